"""Batch jobs: a row whose server fails for good is recorded, never dropped, and retried."""

from __future__ import annotations

import json

import pytest

from cai.data import PromptRow
from cai.errors import BackendError
from cai.jobs import RowJournal, RowsFailed, run_chunks


def _rows(n: int) -> list[PromptRow]:
    return [PromptRow(f"r{i}", [{"role": "user", "content": f"q{i}"}], i, {}) for i in range(n)]


def test_failed_rows_are_recorded_and_a_rerun_retries_only_them(tmp_path):
    rows, calls = _rows(7), []
    bad = {"r2", "r5"}

    def flaky(chunk: list[PromptRow]) -> list[dict]:
        calls.append([r.id for r in chunk])
        if bad & {r.id for r in chunk}:
            raise BackendError("http://127.0.0.1:9/v1/chat/completions failed after 3 attempts")
        return [{"id": r.id, "answer": r.id.upper()} for r in chunk]

    kw = {"fingerprint": "f", "settings": {}, "chunk_size": 3}
    with pytest.raises(RowsFailed, match="2 of 7 rows failed.*rerun the same command"):
        run_chunks(rows, flaky, tmp_path, **kw)
    failed = [json.loads(line) for line in (tmp_path / "failed.jsonl").read_text().splitlines()]
    assert [f["id"] for f in failed] == ["r2", "r5"]
    assert "failed after 3 attempts" in failed[0]["error"]
    done, _ = RowJournal(tmp_path / "rows.jsonl").read()
    assert sorted(r["id"] for r in done) == ["r0", "r1", "r3", "r4", "r6"]
    # a failing chunk is retried row by row: the good rows in it still finish
    assert ["r0"] in calls and ["r2"] in calls and ["r6"] in calls

    bad.clear()
    calls.clear()
    result = run_chunks(rows, flaky, tmp_path, **kw)
    assert calls == [["r2", "r5"]]  # only the failed rows run again
    assert [r["id"] for r in result.rows] == [r.id for r in rows]
    assert result.resumed == 5 and result.processed == 2
    assert not (tmp_path / "failed.jsonl").exists()


def test_other_errors_still_stop_the_run(tmp_path):
    def broken(chunk):
        raise ValueError("a bug, not a server failure")

    with pytest.raises(ValueError):
        run_chunks(_rows(2), broken, tmp_path, fingerprint="f", settings={})


def test_torn_journal_lines_are_dropped_named_and_their_rows_run_again(tmp_path, capsys):
    calls: list[list[str]] = []

    def answer(chunk: list[PromptRow]) -> list[dict]:
        calls.append([r.id for r in chunk])
        return [{"id": r.id, "answer": r.id.upper()} for r in chunk]

    kw = {"fingerprint": "f", "settings": {}, "chunk_size": 3}
    run_chunks(_rows(3), answer, tmp_path, **kw)
    journal = tmp_path / "rows.jsonl"
    whole = journal.read_bytes().split(b"\n")
    journal.write_bytes(b"\n".join(whole[:2]) + b"\n" + whole[2][:25])  # r2's line cut short
    capsys.readouterr()
    calls.clear()
    result = run_chunks(_rows(3), answer, tmp_path, **kw)
    assert calls == [["r2"]] and result.resumed == 2
    assert [r["answer"] for r in result.rows] == ["R0", "R1", "R2"]
    assert f"1 torn or damaged lines dropped from {journal}" in capsys.readouterr().out
    run_chunks(_rows(3), answer, tmp_path, **kw)
    assert "torn" not in capsys.readouterr().out  # a whole journal says nothing
