"""``cai.cli.main``: low-level failures become one red line and exit code 2, not tracebacks.

A full disk, a read-only folder, an output path under a file, bad text, nesting too deep
and memory running out each get a message naming the path (where the error has one) and
saying what to do. ``--debug`` and ``CAI_DEBUG=1`` still re-raise; click's own usage errors
are untouched.

Tests run as root cannot make a folder unwritable with ``chmod``: there the failing write
is simulated by raising the ``OSError`` the kernel would give (EROFS, ENOSPC) at the
journal's append, inside a real ``cai generate-revisions`` run.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cai.jobs import RowJournal

G = ["generate-revisions", "--model", "tiny-random", "--max-new-tokens", "8", "--no-few-shot"]
G += ["--chunk-size", "4"]


def one_line(res) -> str:
    """The error line of a CLI result that must be a one-line error with exit code 2."""
    assert res.code == 2, (res.code, res.err)
    lines = [line for line in res.err.splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    assert "Traceback" not in res.err
    return lines[0]


def prompts(tmp_path: Path, n: int = 8) -> Path:
    path = tmp_path / "p.jsonl"
    rows = [{"id": f"r{i}", "prompt": f"Question number {i}?"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def output_ids(out: Path) -> list[str]:
    files = sorted((out / "data").glob("*.parquet"))
    return sorted(r["id"] for f in files for r in pq.read_table(f).to_pylist())


def fail_append(monkeypatch, code: int, *, on_call: int, torn: bool = False) -> None:
    """Make ``RowJournal.append`` raise ``OSError(code)`` on its ``on_call``-th call."""
    real = RowJournal.append
    calls = {"n": 0}

    def append(self, rows):
        calls["n"] += 1
        if calls["n"] < on_call:
            return real(self, rows)
        if torn:  # the kernel wrote part of the line before the disk filled
            with open(self.path, "ab") as f:
                f.write(b'{"sha256":"0123')
        raise OSError(code, os.strerror(code), str(self.path))

    monkeypatch.setattr(RowJournal, "append", append)


# --- disk ----------------------------------------------------------------------------------


@pytest.mark.hostile("a full disk, then a rerun")
def test_full_disk_is_one_line_and_the_rerun_recovers(cai, tmp_path, monkeypatch):
    src, out = prompts(tmp_path), tmp_path / "out"
    fail_append(monkeypatch, errno.ENOSPC, on_call=2, torn=True)
    line = one_line(cai(*G, "--prompts", src, "-o", out))
    journal = out / "rows.jsonl"
    assert line == (f"error: disk full: {journal}; free space and rerun - finished rows are kept")
    monkeypatch.undo()
    res = cai(*G, "--prompts", src, "-o", out)
    assert res.code == 0, res.err
    assert output_ids(out) == [f"r{i}" for i in range(8)]
    assert "4 resumed" in res.out


@pytest.mark.hostile("read-only output or cache folder (simulated EROFS: tests may run as root)")
def test_read_only_output_is_one_line_naming_the_path(cai, tmp_path, monkeypatch):
    out = tmp_path / "out"
    fail_append(monkeypatch, errno.EROFS, on_call=1)
    line = one_line(cai(*G, "--prompts", prompts(tmp_path), "-o", out))
    assert line.startswith(f"error: {out / 'rows.jsonl'} is read-only")
    assert "choose a writable path" in line


@pytest.mark.hostile("read-only output or cache folder (chmod)")
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0500")
def test_unwritable_output_folder_with_chmod(cai, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        src = tmp_path / "i.json"
        src.write_text(json.dumps({"a": {"prompt": ["Find harm."], "edit_request": "Fix."}}))
        out = locked / "c.yaml"
        line = one_line(cai("constitution", "import", src, "--format", "anthropic", "-o", out))
    finally:
        locked.chmod(0o700)
    assert str(locked) in line and "not writable (permission denied)" in line


def test_output_under_a_file_is_one_line_naming_the_path(cai, tmp_path):
    src = tmp_path / "i.json"
    src.write_text(json.dumps({"a": {"prompt": ["Find harm."], "edit_request": "Fix."}}))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker / "c.yaml", blocker / "sub" / "c.yaml"):
        line = one_line(cai("constitution", "import", src, "--format", "anthropic", "-o", out))
        assert str(blocker) in line and "choose another path" in line


def test_generate_revisions_output_under_a_file(cai, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = one_line(cai(*G, "--prompts", prompts(tmp_path), "-o", blocker / "out"))
    assert str(blocker) in line


# --- other low-level errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.EEXIST, "File exists", "/x/out"), "error: /x/out already exists and is"),
        (OSError(errno.ENOTDIR, "Not a directory", "/x/f/o"), "error: /x/f/o: part of this path"),
        (OSError(errno.EACCES, "Permission denied", "/x/o"), "error: /x/o is not writable"),
        (OSError(errno.EIO, "Input/output error", "/x/o"), "error: /x/o: Input/output error;"),
        (OSError(errno.ENOSPC, "No space left on device"), "error: disk full; free space"),
        (
            UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
            "error: invalid text",
        ),
        (RecursionError("maximum recursion depth exceeded"), "error: data nested too deeply"),
        (MemoryError(), "error: out of memory; use fewer rows at a time"),
    ],
)
def test_low_level_errors_become_one_line(cai, monkeypatch, error, expected):
    def boom(name):
        raise error

    monkeypatch.setattr("cai.constitution.load_constitution", boom)
    line = one_line(cai("constitution", "show", "harmless"))
    assert line.startswith(expected), line


def test_debug_and_cai_debug_still_raise(cai, monkeypatch):
    def boom(name):
        raise OSError(errno.EROFS, "Read-only file system", "/x")

    monkeypatch.setattr("cai.constitution.load_constitution", boom)
    with pytest.raises(OSError):
        cai("--debug", "constitution", "show", "harmless")
    monkeypatch.setenv("CAI_DEBUG", "1")
    with pytest.raises(OSError):
        cai("constitution", "show", "harmless")


def test_an_oserror_without_errno_is_not_hidden(cai, monkeypatch):
    def boom(name):
        raise OSError("something odd")

    monkeypatch.setattr("cai.constitution.load_constitution", boom)
    with pytest.raises(OSError, match="something odd"):
        cai("constitution", "show", "harmless")


def test_cai_errors_and_click_usage_errors_are_unchanged(cai):
    res = cai("constitution", "show", "no-such-thing")
    assert one_line(res).startswith("error: unknown constitution 'no-such-thing'")
    res = cai("generate-revisions", "--no-such-option")
    assert res.code == 2 and "No such option: --no-such-option" in res.err
    assert "Usage:" in res.err and "Traceback" not in res.err
    res = cai("--version")
    assert res.code == 0 and res.out.startswith("cai ")
