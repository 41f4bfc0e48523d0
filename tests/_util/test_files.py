"""`cai._util.files`: atomic writes; a crash mid-write leaves the old file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from cai._util import atomic_file, write_json_atomic, write_text_atomic
from tests.conftest import REPO


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("failure", [ValueError("disk said no"), KeyboardInterrupt()])
def test_an_error_mid_write_leaves_the_old_file_and_no_temporary(tmp_path, failure):
    target = tmp_path / "out.json"
    target.write_text("old\n")
    with pytest.raises(type(failure)):
        with atomic_file(target) as f:
            f.write("new, half writ")
            f.flush()
            raise failure
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_a_killed_writer_leaves_the_old_file(tmp_path):
    """A process that dies mid-write (no clean-up runs) cannot tear the target."""
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    script = (
        "import os, sys\n"
        "from cai._util import atomic_file\n"
        "with atomic_file(sys.argv[1]) as f:\n"
        "    f.write('new ' * 100000)\n"
        "    f.flush()\n"
        "    os._exit(9)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(target)], cwd=REPO)
    assert done.returncode == 9
    assert target.read_text() == "old\n"
    # What the dead writer left is a hidden temporary beside it, never the target itself.
    (tmp,) = leftovers(tmp_path)
    assert tmp.startswith(".out.txt.") and (tmp_path / tmp).stat().st_size > 0


def test_success_replaces_the_file_and_creates_missing_folders(tmp_path):
    target = tmp_path / "a" / "b" / "out.json"
    write_json_atomic(target, {"name": "café", "n": [1, 2]})
    assert json.loads(target.read_text(encoding="utf-8")) == {"name": "café", "n": [1, 2]}
    assert "café" in target.read_text(encoding="utf-8")  # not escaped
    write_text_atomic(target, "second")
    assert target.read_text() == "second"
    with atomic_file(target, "wb") as f:
        f.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert leftovers(target.parent) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_permissions_follow_the_umask_not_mkstemps_0600(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == mode
    assert os.umask(old) == old  # the umask itself is left as it was
