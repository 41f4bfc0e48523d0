"""Batch jobs that cannot mix data: content-keyed resume, an OS lock per output folder,
output paths checked before any model loads, merge coverage, rejects that say why, and a
generation cache whose failures are one line (or a warning and no lost work)."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import load_dataset

from cai.data import PromptRow
from cai.errors import CaiError
from cai.jobs import RowJournal, run_chunks
from tests.conftest import REPO

G = ["generate-revisions", "--model", "tiny-random", "--max-new-tokens", "8", "--no-few-shot",
     "--chunk-size", "4", "--batch-size", "4"]  # fmt: skip


def _write(path: Path, prompts: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in prompts.items()))
    return path


def _run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def _rows(n: int) -> list[PromptRow]:
    return [PromptRow(f"r{i}", [{"role": "user", "content": f"q{i}"}], i, {}) for i in range(n)]


def _echo(chunk: list[PromptRow]) -> list[dict]:
    return [{"id": r.id, "answer": r.conversation[0]["content"].upper()} for r in chunk]


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a command loads a model: checks must come first."""
    from cai.config import BackendConfig

    def create(self):
        raise AssertionError("a model was loaded before the output path was checked")

    monkeypatch.setattr(BackendConfig, "create", create)


def _hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds the output folder's lock until killed."""
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom cai.jobs.chunks import output_lock\n"
        "with output_lock(Path(sys.argv[1])):\n    print('locked', flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


# --- resume by content, not by id ------------------------------------------------------


@pytest.mark.hostile("same folder and settings, a new input file with the same ids")
def test_a_new_input_with_the_same_ids_is_regenerated_not_resumed(cai, tmp_path):
    from cai.jobs.chunks import INPUT_KEY

    out, cache = tmp_path / "out", tmp_path / "c.sqlite"
    a = _write(tmp_path / "a.jsonl", {"1": "How do I bake bread?", "2": "Name a colour."})
    b = _write(tmp_path / "b.jsonl", {"1": "What is a prime number?", "2": "Say hello."})
    res = cai(*G, "--prompts", a, "-o", out, "--cache", cache)
    assert res.code == 0, res.err
    res = cai(*G, "--prompts", b, "-o", out, "--cache", cache)
    assert res.code == 0, res.err
    s = _run_json(out)["summary"]
    assert s["resumed_rows"] == 0 and s["changed_rows"] == 2 and s["processed_rows"] == 2
    assert "2 changed" in res.out
    ds = load_dataset(str(out))["train"]
    prompts = {r["id"]: r["prompt"][0]["content"] for r in ds}
    assert prompts == {"1": "What is a prime number?", "2": "Say hello."}
    assert INPUT_KEY not in ds.column_names
    journal, bad = RowJournal(out / "rows.jsonl").read()
    assert bad == 0 and len(journal) == 2  # A's rows are gone, not kept beside B's
    assert {r["prompt"][0]["content"] for r in journal} == set(prompts.values())
    # Unchanged input resumes as before.
    res = cai(*G, "--prompts", b, "-o", out, "--cache", cache)
    assert res.code == 0 and _run_json(out)["summary"]["resumed_rows"] == 2


@pytest.mark.hostile("same folder and settings, a new input file with the same ids (one row)")
def test_only_the_changed_row_runs_again_and_keys_stay_out_of_the_result(tmp_path):
    from cai.jobs.chunks import INPUT_KEY

    calls: list[list[str]] = []

    def process(chunk):
        calls.append([r.id for r in chunk])
        return _echo(chunk)

    kw = {"fingerprint": "f", "settings": {}, "chunk_size": 2}
    run_chunks(_rows(3), process, tmp_path, **kw)
    edited = _rows(3)
    edited[1] = PromptRow("r1", [{"role": "user", "content": "other"}], 1, {})
    calls.clear()
    result = run_chunks(edited, process, tmp_path, **kw)
    assert calls == [["r1"]]
    assert result.changed == 1 and result.resumed == 2
    assert [r["answer"] for r in result.rows] == ["Q0", "OTHER", "Q2"]
    assert all(INPUT_KEY not in r for r in result.rows)
    # A changed extra column (e.g. a judge's candidates) is a changed input too.
    extra = [PromptRow(r.id, r.conversation, r.index, {"chosen": "x"}) for r in edited]
    calls.clear()
    assert run_chunks(extra, process, tmp_path, **kw).changed == 3


def test_rows_journaled_without_a_key_do_not_resume(tmp_path):
    """An older cai's journal stays readable; its rows are just processed again."""
    RowJournal(tmp_path / "rows.jsonl").append([{"id": "r0", "answer": "stale"}])
    (tmp_path / "run.json").write_text(json.dumps({"fingerprint": "f"}))
    result = run_chunks(_rows(1), _echo, tmp_path, fingerprint="f", settings={})
    assert result.changed == 1 and result.rows == [{"id": "r0", "answer": "Q0"}]


# --- one run per output folder ----------------------------------------------------------


@pytest.mark.hostile("two G runs on one folder at once, same settings")
def test_a_locked_folder_fails_naming_the_holder_and_a_kill_releases_it(cai, tmp_path, no_model):
    from cai.jobs import output_lock

    out = tmp_path / "out"
    src = _write(tmp_path / "p.jsonl", {str(i): f"Question number {i}?" for i in range(4)})
    holder = _hold_lock(out)
    try:
        res = cai(*G, "--prompts", src, "-o", out, "--no-cache")
        assert res.code == 2
        assert f"pid {holder.pid}" in res.err and str(out) in res.err
        assert "in use by another cai run" in res.err and "Traceback" not in res.err
        assert not (out / "rows.jsonl").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # The kernel released the lock with the dead holder: the next run goes ahead.
    with output_lock(out):
        assert (out / ".lock").read_text().startswith(f"pid {os.getpid()}")


@pytest.mark.hostile("two G runs on one folder at once, different settings")
def test_a_second_run_with_other_settings_cannot_mix_into_the_folder(cai, tmp_path):
    out = tmp_path / "out"
    src = _write(tmp_path / "p.jsonl", {str(i): f"Question number {i}?" for i in range(4)})
    assert cai(*G, "--prompts", src, "--limit", "2", "-o", out, "--no-cache").code == 0
    before = _run_json(out)
    holder = _hold_lock(out)
    try:
        res = cai(*G, "--prompts", src, "-o", out, "--no-cache", "--temperature", "0")
        assert res.code == 2 and f"pid {holder.pid}" in res.err
        assert _run_json(out) == before  # nothing of the second run's settings got in
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    res = cai(*G, "--prompts", src, "-o", out, "--no-cache")
    assert res.code == 0, res.err
    assert _run_json(out)["summary"]["resumed_rows"] == 2  # after kill -9: a rerun resumes


@pytest.mark.hostile("two G runs on one folder at once, same settings (a real kill -9)")
def test_kill_9_of_a_real_run_then_a_rerun_resumes(cai, tmp_path):
    out = tmp_path / "out"
    args = [*G, "--limit", "40", "--chunk-size", "1", "--max-new-tokens", "24", "-o", out,
            "--no-cache"]  # fmt: skip
    cmd = [sys.executable, "-c", "from cai.cli import main; main()", *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = RowJournal(out / "rows.jsonl")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.path.exists() and journal.read()[0]:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    res = cai(*args)  # while it runs: refused at once, naming it
    assert res.code == 2 and f"pid {proc.pid}" in res.err
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done = len(journal.read()[0])
    res = cai(*args)
    assert res.code == 0, res.err
    s = _run_json(out)["summary"]
    assert s["resumed_rows"] == done and s["rows"] == 40


def test_run_chunks_locks_its_folder_for_every_command(tmp_path):
    """evaluate and best-of-n call run_chunks directly: it takes the lock itself."""
    from cai.jobs import output_lock

    holder = _hold_lock(tmp_path)
    try:
        with pytest.raises(CaiError, match=f"pid {holder.pid}"):
            run_chunks(_rows(1), _echo, tmp_path, fingerprint="f", settings={})
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with output_lock(tmp_path):  # re-entrant within one process
        assert run_chunks(_rows(1), _echo, tmp_path, fingerprint="f", settings={}).processed == 1


# --- output paths -----------------------------------------------------------------------


@pytest.mark.hostile("`-o` is a file, or lies under a file")
@pytest.mark.parametrize("under", [False, True])
def test_output_that_is_a_file_fails_before_loading(cai, tmp_path, no_model, under):
    blocker = tmp_path / "taken.txt"
    blocker.write_text("not a folder")
    out = blocker / "sub" if under else blocker
    res = cai(*G, "--limit", "2", "-o", out)
    assert res.code == 2, res.err
    assert str(blocker) in res.err and "Traceback" not in res.err
    assert blocker.read_text() == "not a folder"


@pytest.mark.hostile("read-only output or cache folder (output)")
def test_read_only_output_is_one_line_naming_the_folder(cai, tmp_path, monkeypatch, no_model):
    """Simulated with monkeypatch: tests run as root, where chmod does not stop writes."""
    from cai.jobs import chunks as jobs

    def read_only(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(jobs, "_open_lock_file", read_only)
    res = cai(*G, "--limit", "2", "-o", tmp_path / "ro")
    assert res.code == 2 and "Read-only file system" in res.err
    assert str(tmp_path / "ro") in res.err


# --- every row rejected -----------------------------------------------------------------


@pytest.mark.hostile("every row over context")
def test_every_row_over_context_writes_rejects_and_says_why(cai, tmp_path):
    long = "hello world " * 5000  # ~10k tokens; tiny-random has 8,192
    src = _write(tmp_path / "p.jsonl", {"a": long, "b": long + "again"})
    out = tmp_path / "out"
    res = cai(*G, "--prompts", src, "-o", out, "--no-cache")
    assert res.code == 2
    assert "all 2 rows were rejected" in res.err and "over context (2)" in res.err
    assert str(out / "rejects.jsonl") in res.err
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rejects] == ["a", "b"]
    assert all(r["reason"].startswith("over context") for r in rejects)


# --- merge ------------------------------------------------------------------------------


@pytest.mark.hostile("one of two shards")
def test_merge_with_a_missing_shard_fails_unless_allowed(cai, tmp_path):
    src = _write(tmp_path / "p.jsonl", {str(i): f"Question number {i}?" for i in range(6)})
    shards = []
    for i in range(2):
        out = tmp_path / f"s{i}"
        res = cai(*G, "--prompts", src, "--num-shards", 2, "--shard-index", i, "-o", out,
                  "--no-cache")  # fmt: skip
        assert res.code == 0, res.err
        assert _run_json(out)["settings"]["num_shards"] == 2
        shards.append(out)
    res = cai("merge", shards[0], "-o", tmp_path / "m")
    assert res.code == 2 and "shard index(es) 1 of 2 are missing" in res.err
    assert "--allow-missing" in res.err
    res = cai("merge", shards[0], "--allow-missing", "-o", tmp_path / "m")
    assert res.code == 0, res.err
    assert "(shard index(es) 1 missing)" in res.out
    assert _run_json(tmp_path / "m")["missing_shards"] == [1]
    assert "are missing" in (tmp_path / "m" / "README.md").read_text()
    res = cai("merge", *shards, "-o", tmp_path / "all")
    assert res.code == 0 and "merged 6 rows" in res.out
    res = cai("merge", *shards, "-o", shards[0])
    assert res.code == 2 and "is one of the shards" in res.err


# --- the generation cache ---------------------------------------------------------------


@pytest.mark.hostile("a garbage or corrupt cache file")
def test_a_garbage_cache_is_named_with_a_way_out(cai, tmp_path, no_model):
    cache = tmp_path / "c.sqlite"
    cache.write_bytes(b"this is not sqlite " * 200)
    res = cai(*G, "--limit", "2", "-o", tmp_path / "out", "--cache", cache)
    assert res.code == 2 and str(cache) in res.err and "--no-cache" in res.err
    assert "Traceback" not in res.err


@pytest.mark.hostile("read-only output or cache folder (cache)")
def test_a_read_only_cache_is_one_line_naming_the_file(cai, tmp_path, monkeypatch, no_model):
    """Simulated with monkeypatch (sqlite's own error for a read-only folder): tests run as
    root, where chmod does not stop writes."""
    from cai.jobs import cache as gencache

    class ReadOnlySqlite:
        Error = sqlite3.Error

        @staticmethod
        def connect(*args, **kwargs):
            raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(gencache, "sqlite3", ReadOnlySqlite)
    cache = tmp_path / "ro" / "c.sqlite"
    res = cai(*G, "--limit", "2", "-o", tmp_path / "out", "--cache", cache)
    assert res.code == 2 and str(cache) in res.err and "--no-cache" in res.err


@pytest.mark.hostile("a cache locked by another process")
def test_a_locked_cache_warns_once_and_keeps_every_generation(cai, tmp_path, monkeypatch):
    from cai.jobs import GenerationCache
    from cai.jobs import cache as gencache

    monkeypatch.setattr(gencache, "BUSY_TIMEOUT", 0.2)
    cache = tmp_path / "c.sqlite"
    GenerationCache(cache).close()
    code = (
        "import sqlite3, sys, time\nd = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "d.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(cache)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        out = tmp_path / "out"
        res = cai(*G, "--limit", "8", "-o", out, "--cache", cache)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert res.code == 0, res.err
    assert (res.out + res.err).count("going on without the cache") == 1
    assert _run_json(out)["summary"]["rows"] == 8
