"""The CLI's surface, and the wheel: it must carry the constitutions and prompts."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from cai import __version__
from tests.conftest import REPO


def test_version_and_help(cai):
    res = cai("--version")
    assert res.code == 0 and res.out.strip() == f"cai {__version__}"
    res = cai("--help")
    assert res.code == 0
    for group in ("constitution", "prompts", "models"):
        assert group in res.out
        sub = cai(group, "--help")
        assert sub.code == 0 and "Commands" in sub.out


def test_errors_are_one_red_line_and_debug_shows_traceback(cai):
    res = cai("constitution", "show", "nope")
    assert res.code == 2 and res.err.count("\n") == 1 and res.err.startswith("error:")
    from cai.errors import CaiError

    with pytest.raises(CaiError):
        cai("--debug", "constitution", "show", "nope")


@pytest.mark.slow
def test_wheel_ships_constitutions_and_prompts(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
    )
    wheel = next(dist.glob("cai-*.whl"))
    scratch = tmp_path / "venv"
    venv.create(scratch, with_pip=True)
    py = scratch / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], check=True)
    # Borrow the dependencies (typer, pydantic, ...) from this environment, but not cai itself:
    # a .pth path line does not run the editable-install hooks of the borrowed folder.
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [py, "-c", "import cai.resources as r; print(r.data_dir('prompts'))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=env,
    )
    assert where.stdout.strip().startswith(site), where.stdout
    listed = subprocess.run(
        [scratch / "bin" / "cai", "constitution", "list"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert listed.returncode == 0, listed.stderr
    for name in ("harmless", "hhh", "witty-refuser"):
        assert name in listed.stdout
    rendered = subprocess.run(
        [scratch / "bin" / "cai", "prompts", "render", "compare"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert rendered.returncode == 0 and "(A)" in rendered.stdout, rendered.stderr
