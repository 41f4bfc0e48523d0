"""RowJournal: checksummed append-only rows that survive kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cai.errors import CaiError
from cai.jobs import RowJournal, row_sha256
from tests.conftest import REPO


def _rows(start: int, stop: int) -> list[dict]:
    return [
        {
            "id": str(i),
            "prompt": f"prompt {i} \u2028 \u00e9\n",
            "messages": [{"role": "user", "content": "hi"}],
            "score": i / 3,
        }
        for i in range(start, stop)
    ]


def test_append_read_round_trip(tmp_path):
    journal = RowJournal(tmp_path / "sub" / "rows.jsonl")
    assert journal.read() == ([], 0)
    journal.append(_rows(0, 3))
    journal.append(_rows(3, 5))
    journal.append([])
    rows, bad = journal.read()
    assert rows == _rows(0, 5) and bad == 0
    assert journal.ids() == {"0", "1", "2", "3", "4"}
    # One line per row, split on b"\n" only: U+2028 stays raw inside the JSON.
    lines = journal.path.read_bytes().split(b"\n")
    assert len(lines) == 6 and lines[-1] == b"" and "\u2028".encode() in lines[0]
    first = json.loads(lines[0])
    assert first["row"] == _rows(0, 1)[0] and first["sha256"] == row_sha256(first["row"])


def test_rows_need_a_str_id_and_a_bad_batch_writes_nothing(tmp_path):
    journal = RowJournal(tmp_path / "rows.jsonl")
    with pytest.raises(CaiError, match="str 'id'"):
        journal.append([{"id": "a"}, {"id": 1}])
    with pytest.raises(CaiError, match="JSON"):
        journal.append([{"id": "a", "x": object()}])
    assert not journal.path.exists()


def test_torn_last_line_is_ignored_and_counted(tmp_path):
    journal = RowJournal(tmp_path / "rows.jsonl")
    journal.append(_rows(0, 3))
    whole = json.dumps({"sha256": row_sha256(_rows(3, 4)[0]), "row": _rows(3, 4)[0]})
    with open(journal.path, "ab") as f:
        f.write(whole.encode()[: len(whole) // 2])
    assert journal.read() == (_rows(0, 3), 1)


def test_tampered_row_is_ignored(tmp_path):
    journal = RowJournal(tmp_path / "rows.jsonl")
    journal.append(_rows(0, 3))
    lines = journal.path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"score":0.3333333333333333', b'"score":0.5')
    journal.path.write_bytes(b"\n".join(lines))
    rows, bad = journal.read()
    assert [r["id"] for r in rows] == ["0", "2"] and bad == 1


def test_duplicate_ids_keep_the_first(tmp_path):
    journal = RowJournal(tmp_path / "rows.jsonl")
    journal.append(_rows(0, 2))
    journal.append([{**_rows(1, 2)[0], "score": 99}])
    rows, bad = journal.read()
    assert rows == _rows(0, 2) and bad == 1


def test_repair_drops_bad_lines_then_appends_cleanly(tmp_path):
    journal = RowJournal(tmp_path / "rows.jsonl")
    journal.append(_rows(0, 3))
    with open(journal.path, "ab") as f:
        f.write(b'not json\n{"sha256": "0", "row": {"id": "9"}}\n{"sha256": "ab')
    assert journal.read() == (_rows(0, 3), 3)
    assert journal.repair() == 3
    assert journal.repair() == 0
    journal.append(_rows(3, 4))
    assert journal.read() == (_rows(0, 4), 0)
    assert journal.path.read_bytes().endswith(b"\n")


def test_append_after_a_torn_tail_never_joins_the_partial_line(tmp_path):
    journal = RowJournal(tmp_path / "rows.jsonl")
    journal.append(_rows(0, 2))
    with open(journal.path, "ab") as f:
        f.write(b'{"sha256": "ab')
    journal.append(_rows(2, 4))  # repairs first
    assert journal.read() == (_rows(0, 4), 0)


WRITER = """
import sys
from pathlib import Path
from cai.jobs.journal import RowJournal

journal = RowJournal(Path(sys.argv[1]))
i = 0
while True:
    journal.append([{"id": str(j), "text": "x" * (j % 997 * 64)} for j in range(i, i + 3)])
    i += 3
"""


def test_kill_9_mid_write_leaves_only_whole_rows(tmp_path):
    path = tmp_path / "rows.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if path.exists() and path.read_bytes().count(b"\n") >= 20:
                break
            assert proc.poll() is None, "the writer exited early"
            time.sleep(0.01)
        else:
            pytest.fail("the writer did not write 20 lines in 30 s")
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    journal = RowJournal(path)
    rows, bad = journal.read()
    ids = [int(r["id"]) for r in rows]
    assert len(ids) >= 20 and ids == list(range(len(ids)))
    assert bad <= 1  # at most the line being written when the signal landed
    assert all(r["text"] == "x" * (int(r["id"]) % 997 * 64) for r in rows)
    assert journal.repair() == bad
    journal.append([{"id": str(len(ids)), "text": ""}])
    assert journal.read() == ([*rows, {"id": str(len(ids)), "text": ""}], 0)
