"""Resumable, shardable batch jobs over prompt rows, shared by every command that writes data.

An output folder holds::

    rows.jsonl      finished rows, appended with a checksum per line as each chunk ends
    run.json        the run's fingerprint, settings and summary
    rejects.jsonl   rows that were skipped, with the reason
    failed.jsonl    rows whose model server failed for good (after its retries), with
                    the error; the run exits non-zero and a rerun retries them
    data/, README.md   the dataset and its card, written when the run completes

Rerunning the same command continues where it stopped: rows already in ``rows.jsonl``
are not processed again. If the settings changed (a different fingerprint), the old rows
are set aside and the run starts over; the generation cache still makes every unchanged
generation free.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from cai.data import PromptRow, Reject, write_rejects
from cai.errors import BackendError, CaiError
from cai.files import write_json_atomic, write_text_atomic
from cai.journal import RowJournal


def shard_of(row_id: str, num_shards: int) -> int:
    """A row's shard: stable across reruns, orderings and machines."""
    return int(hashlib.sha256(row_id.encode()).hexdigest()[:8], 16) % num_shards


def select_shard(rows: list[PromptRow], num_shards: int, shard_index: int) -> list[PromptRow]:
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise CaiError(f"--shard-index must be in [0, {num_shards}), got {shard_index}")
    if num_shards == 1:
        return rows
    return [r for r in rows if shard_of(r.id, num_shards) == shard_index]


class RowsFailed(CaiError):
    """Some rows of a batch job failed on the model server; a rerun retries them."""


@dataclass
class JobResult:
    rows: list[dict]
    """Every finished row of this run, in input order."""
    resumed: int
    """Rows found finished in the journal and not processed again."""
    processed: int
    """Rows processed by this invocation."""
    seconds: float
    torn_lines: int = 0
    extra: dict = field(default_factory=dict)


def run_chunks(
    rows: list[PromptRow],
    process: Callable[[list[PromptRow]], list[dict]],
    out_dir: Path,
    *,
    fingerprint: str,
    settings: dict,
    chunk_size: int = 64,
    desc: str = "rows",
    tokens: Callable[[], int] | None = None,
    workers: int = 1,
) -> JobResult:
    """Process ``rows`` in chunks, appending finished rows to ``out_dir/rows.jsonl``.

    ``process`` gets a chunk and returns one output dict (with ``id``) per input row.
    ``tokens`` reports the generated tokens so far, for the progress bar. With
    ``workers`` > 1, that many chunks run at once in threads (for a model server: one
    chunk's later turns overlap another's stragglers); ``process`` must be thread-safe.
    Rows are journaled as their chunk ends, in any order; the result keeps input order.

    If ``process`` raises ``BackendError`` (a server failed after its retries), the chunk
    is retried one row at a time; rows that still fail go to ``failed.jsonl`` with the
    error, the other chunks go on, and at the end ``RowsFailed`` is raised. Nothing is
    dropped: a rerun of the same command processes exactly the failed rows again.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    run_file = out_dir / "run.json"
    journal = RowJournal(out_dir / "rows.jsonl")
    previous = json.loads(run_file.read_text()) if run_file.is_file() else {}
    if previous.get("fingerprint") not in (None, fingerprint) and journal.path.exists():
        stale = journal.path.with_name(f"rows.{previous['fingerprint']}.jsonl")
        journal.path.replace(stale)
        tqdm.write(
            f"settings changed since the last run in {out_dir}; starting over "
            f"(old rows kept in {stale.name}; unchanged generations come from the cache)"
        )
    torn = journal.repair() if journal.path.exists() else 0
    write_json_atomic(
        run_file,
        {
            **previous,
            "fingerprint": fingerprint,
            "settings": settings,
            "expected_ids": [r.id for r in rows],
            "complete": False,
        },
    )
    done, _ = journal.read()
    done_by_id = {r["id"]: r for r in done}
    pending = [r for r in rows if r.id not in done_by_id]
    resumed = len(rows) - len(pending)
    start = time.perf_counter()
    failed: list[dict] = []
    lock = threading.Lock()

    def attempt(chunk: list[PromptRow]) -> list[PromptRow]:
        try:
            out = process(chunk)
        except BackendError as e:
            if len(chunk) > 1:
                tqdm.write(f"{e}; retrying these {len(chunk)} rows one at a time")
                for row in chunk:
                    attempt([row])
                return chunk
            with lock:
                failed.append({"id": chunk[0].id, "error": str(e)})
            return chunk
        with lock:
            journal.append(out)
            done_by_id.update((r["id"], r) for r in out)
        return chunk

    chunks = [pending[i : i + chunk_size] for i in range(0, len(pending), chunk_size)]
    bar = tqdm(total=len(rows), initial=resumed, desc=desc, unit="row", dynamic_ncols=True)
    pool = ThreadPoolExecutor(workers) if workers > 1 and len(chunks) > 1 else None
    finished = 0
    try:
        ends = (
            map(attempt, chunks)
            if pool is None
            else (f.result() for f in as_completed([pool.submit(attempt, c) for c in chunks]))
        )
        for chunk in ends:
            finished += len(chunk)
            bar.update(len(chunk))
            elapsed = time.perf_counter() - start
            postfix = {"rows/s": f"{finished / elapsed:.2f}"}
            if tokens is not None:
                postfix["tok/s"] = f"{tokens() / elapsed:.1f}"
            bar.set_postfix(postfix)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        bar.close()
    failed_file = out_dir / "failed.jsonl"
    if failed:
        write_text_atomic(failed_file, "".join(json.dumps(f) + "\n" for f in failed))
        raise RowsFailed(
            f"{len(failed)} of {len(rows)} rows failed on the model server (errors in "
            f"{failed_file}); the finished rows are kept: rerun the same command to retry them"
        )
    failed_file.unlink(missing_ok=True)
    return JobResult(
        rows=[done_by_id[r.id] for r in rows if r.id in done_by_id],
        resumed=resumed,
        processed=len(pending),
        seconds=time.perf_counter() - start,
        torn_lines=torn,
    )


def finish_run(out_dir: Path, rejects: list[Reject], summary: dict) -> None:
    """Record the rejects and the summary, and mark the run complete."""
    write_rejects(out_dir / "rejects.jsonl", rejects)
    run_file = out_dir / "run.json"
    state = json.loads(run_file.read_text()) if run_file.is_file() else {}
    write_json_atomic(run_file, {**state, "summary": summary, "complete": True})


def merge_outputs(shard_dirs: list[Path]) -> tuple[list[dict], list[Reject], dict]:
    """Join the finished rows of several shard folders; check each row is there exactly once.

    Every shard must be complete (each of its expected ids finished) and no id may
    appear in two shards. Returns the rows, the rejects and the first shard's settings.
    """
    rows: list[dict] = []
    rejects: list[Reject] = []
    seen: dict[str, Path] = {}
    settings: dict = {}
    fingerprints = set()
    for d in shard_dirs:
        run_file = d / "run.json"
        if not run_file.is_file():
            raise CaiError(f"{d}: no run.json; is this a cai output folder?")
        state = json.loads(run_file.read_text())
        fingerprints.add(state.get("fingerprint"))
        settings = settings or state.get("settings", {})
        shard_rows, _ = RowJournal(d / "rows.jsonl").read()
        ids = {r["id"] for r in shard_rows}
        missing = [i for i in state.get("expected_ids", []) if i not in ids]
        if missing:
            raise CaiError(
                f"{d}: {len(missing)} rows unfinished (e.g. {missing[0]}); rerun that shard"
            )
        for r in shard_rows:
            if r["id"] in seen:
                raise CaiError(f"row {r['id']} is in both {seen[r['id']]} and {d}")
            seen[r["id"]] = d
        rows += shard_rows
        rj = d / "rejects.jsonl"
        if rj.is_file():
            for line in rj.read_text().splitlines():
                if line.strip():
                    rejects.append(Reject(**json.loads(line)))
    if len(fingerprints) > 1:
        raise CaiError("the shards were made with different settings; merge only shards of one run")
    return sorted(rows, key=lambda r: r["id"]), rejects, settings
