"""Resumable, shardable batch jobs over prompt rows, shared by every command that writes data.

An output folder holds::

    rows.jsonl      finished rows, appended with a checksum per line as each chunk ends
    run.json        the run's fingerprint, settings and summary
    rejects.jsonl   rows that were skipped, with the reason
    failed.jsonl    rows whose model server failed for good (after its retries), with
                    the error; the run exits non-zero and a rerun retries them
    data/, README.md   the dataset and its card, written when the run completes

Rerunning the same command continues where it stopped: rows already in ``rows.jsonl``
are not processed again, as long as their input is unchanged (each row is journaled with
a content key of its input: a new file with the same ids, or a file edited in place, is
processed again). If the settings changed (a different fingerprint), the old rows are set
aside and the run starts over; the generation cache still makes every unchanged
generation free.

Safety: one run at a time per output folder (``output_lock``: an OS lock on
``.lock``, released by the kernel if the holder dies); output paths that are files,
lie under files or overlap the input are refused before any model loads; an unfinished
cai output folder is refused as input unless ``--allow-partial``.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tqdm.auto import tqdm

from cai._util import canonical_hash, write_json_atomic, write_text_atomic
from cai.data import PromptRow, Reject, write_rejects
from cai.errors import BackendError, CaiError
from cai.jobs.journal import RowJournal
from cai.progress import JobBar


def shard_of(row_id: str, num_shards: int) -> int:
    """A row's shard: stable across reruns, orderings and machines.

    A hash of the id's text, not ``canonical_hash``: it places rows, it is not an id,
    and changing it would move the rows of existing sharded runs."""
    return int(hashlib.sha256(row_id.encode()).hexdigest()[:8], 16) % num_shards


def select_shard(rows: list[PromptRow], num_shards: int, shard_index: int) -> list[PromptRow]:
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise CaiError(f"--shard-index must be in [0, {num_shards}), got {shard_index}")
    if num_shards == 1:
        return rows
    return [r for r in rows if shard_of(r.id, num_shards) == shard_index]


def _locked(fn: Callable) -> Callable:
    """Run ``fn(rows, process, out_dir, ...)`` holding the lock on ``out_dir``."""

    @functools.wraps(fn)
    def wrapper(rows, process, out_dir, *args, **kwargs):
        with output_lock(Path(out_dir)):
            return fn(rows, process, out_dir, *args, **kwargs)

    return wrapper


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
    changed: int = 0
    """Rows found in the journal but made from another input (a new file with the same
    ids, a file edited in place): processed again, the old version dropped."""


@_locked
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
    row_key: Callable[[PromptRow], str] | None = None,
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

    A journaled row resumes only if its input is unchanged: each row is journaled with
    ``row_key(row)`` (default ``input_key(row, fingerprint)``: its conversation, other
    columns and the fingerprint), and a row whose key differs is processed again. The
    folder is locked (``output_lock``) for the whole call.
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
    if torn:
        tqdm.write(
            f"{torn} torn or damaged lines dropped from {journal.path} (a run was stopped "
            "mid-write, or the file was edited); their rows are processed again"
        )
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
    keys = {r.id: (row_key or (lambda r: input_key(r, fingerprint)))(r) for r in rows}
    changed = {i for i, k in keys.items() if i in done_by_id and done_by_id[i].get(INPUT_KEY) != k}
    if changed:
        journal.drop(changed)
        for i in changed:
            del done_by_id[i]
        tqdm.write(
            f"{len(changed)} rows in {out_dir} were made from another input (same id, other "
            "content, or journaled by an older cai); processing them again"
        )
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
        for r in out:
            if isinstance(r, dict) and r.get("id") in keys:
                r[INPUT_KEY] = keys[r["id"]]
        with lock:
            journal.append(out)
            done_by_id.update((r["id"], r) for r in out)
        return chunk

    chunks = [pending[i : i + chunk_size] for i in range(0, len(pending), chunk_size)]
    # The bar moves as chunks end, and its stage and tok/s as the backend decodes.
    bar = JobBar(total=len(rows), desc=desc, initial=resumed)
    pool = ThreadPoolExecutor(workers) if workers > 1 and len(chunks) > 1 else None
    try:
        with bar:
            ends = (
                map(attempt, chunks)
                if pool is None
                else (f.result() for f in as_completed([pool.submit(attempt, c) for c in chunks]))
            )
            for chunk in ends:
                bar.update(len(chunk), tokens() if tokens is not None else None)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    failed_file = out_dir / "failed.jsonl"
    if failed:
        write_text_atomic(failed_file, "".join(json.dumps(f) + "\n" for f in failed))
        raise RowsFailed(
            f"{len(failed)} of {len(rows)} rows failed on the model server (errors in "
            f"{failed_file}); the finished rows are kept: rerun the same command to retry them"
        )
    failed_file.unlink(missing_ok=True)
    return JobResult(
        rows=[strip_key(done_by_id[r.id]) for r in rows if r.id in done_by_id],
        resumed=resumed,
        changed=len(changed),
        processed=len(pending),
        seconds=time.perf_counter() - start,
    )


def finish_run(
    out_dir: Path, rejects: list[Reject], summary: dict, *, complete: bool = True
) -> None:
    """Record the rejects and the summary, and mark the run complete (or, with
    ``complete=False``, keep the summary of a run that wrote no dataset)."""
    write_rejects(out_dir / "rejects.jsonl", rejects)
    run_file = out_dir / "run.json"
    state = json.loads(run_file.read_text()) if run_file.is_file() else {}
    write_json_atomic(run_file, {**state, "summary": summary, "complete": complete})


def merge_outputs(
    shard_dirs: list[Path], *, allow_missing: bool = False
) -> tuple[list[dict], list[Reject], dict]:
    """Join the finished rows of several shard folders; check each row is there exactly once.

    Every shard must be complete (each of its expected ids finished), no id may appear
    in two shards, and every shard index of the run (``settings.num_shards``) must be
    given, unless ``allow_missing``. Returns the rows, the rejects and the first shard's
    settings.
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
        if "expected_ids" in state:  # rows of an earlier input are not this run's
            expected = set(state["expected_ids"])
            shard_rows = [strip_key(r) for r in shard_rows if r["id"] in expected]
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
    num_shards, absent = missing_shards(shard_dirs)
    if absent and not allow_missing:
        raise CaiError(
            f"shard index(es) {', '.join(map(str, absent))} of {num_shards} are missing; "
            "give every shard's folder, or pass --allow-missing to merge only these"
        )
    return sorted(rows, key=lambda r: r["id"]), rejects, settings


def missing_shards(shard_dirs: list[Path]) -> tuple[int | None, list[int]]:
    """The run's ``num_shards`` (from the shards' run.json) and the indices not given."""
    counts, given = set(), set()
    for d in shard_dirs:
        settings = json.loads((d / "run.json").read_text()).get("settings") or {}
        if isinstance(settings.get("num_shards"), int):
            counts.add(settings["num_shards"])
            given.add(settings.get("shard_index", 0))
    if not counts:
        return None, []  # not recorded (an older run): nothing to check
    if len(counts) > 1:
        raise CaiError(f"the shards were split {sorted(counts)} ways; merge shards of one run")
    n = counts.pop()
    return n, sorted(set(range(n)) - given)


# --- safety: output folders, locks, inputs ----------------------------------------------

INPUT_KEY = "_input_key"
"""The journal field that holds the content key of the input a row was made from."""

_HELD: dict[Path, list[int]] = {}  # output folder -> [lock file descriptor, nesting depth]
_HELD_GUARD = threading.Lock()


def input_key(row: PromptRow, fingerprint: str) -> str:
    """The content key of a row's input: its conversation, its other columns (candidates
    and anything else that may shape the output) and the run's settings fingerprint.

    A journaled row resumes only while its key is unchanged, so a new input file with the
    same ids, or a file edited in place, never resumes old output."""
    return canonical_hash([fingerprint, row.conversation, row.extra], 32)


def strip_key(row: dict) -> dict:
    """A journaled row without its input key, as it goes into the dataset."""
    return {k: v for k, v in row.items() if k != INPUT_KEY}


def check_output_dir(out_dir: Path) -> None:
    """Refuse an output path that is a file or lies under one; call it before loading models."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CaiError(f"output {out_dir} is a file, not a folder; give a folder path with -o")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CaiError(
                    f"output {out_dir} lies under {parent}, which is a file; "
                    "give a folder path with -o"
                )
            break


def _open_lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive OS lock on an output folder while a job writes it.

    ``flock`` on ``out_dir/.lock``, never waiting: a second run on the same folder fails
    at once with a ``CaiError`` naming the holder's pid and command (written into the
    lock file). The kernel releases the lock when the holder exits or is killed, so a
    rerun after ``kill -9`` just resumes. Re-entrant within a process (a job that locks
    its folder may call ``run_chunks``, which locks it too).
    """
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        key = out_dir.resolve()
    except OSError as e:
        raise CaiError(
            f"cannot create the output folder {out_dir} ({e.strerror}); choose a writable path"
        ) from None
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
    if held is not None:
        try:
            yield
        finally:
            with _HELD_GUARD:
                held[1] -= 1
        return
    lock_file = out_dir / ".lock"
    try:
        fd = _open_lock_file(lock_file)
    except OSError as e:
        raise CaiError(
            f"cannot write to the output folder {out_dir} ({e.strerror}); choose a writable path"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "pid unknown"
        os.close(fd)
        raise CaiError(
            f"{out_dir} is in use by another cai run ({holder}); wait for it to finish, "
            "or give another -o folder"
        ) from None
    command = " ".join(["cai", *[a for a in sys.argv[1:3] if not a.startswith("-")]][:2])
    since = datetime.now().isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}, {command}, since {since}\n".encode(), 0)
    with _HELD_GUARD:
        _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        with _HELD_GUARD:
            del _HELD[key]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_not_overlapping(source: str | Path, out_dir: Path) -> None:
    """Refuse an output folder that would overwrite the input: the same folder, inside its
    ``data/``, or a folder that holds the input."""
    src = Path(source).expanduser()
    if not src.exists():
        return  # a shipped set or a Hub id
    src, out = src.resolve(), Path(out_dir).expanduser().resolve()
    if _inside(src, out) or (src.is_dir() and _inside(out, src / "data")):
        raise CaiError(
            f"output {out_dir} would overwrite the input {source}; give another -o folder"
        )


def check_input_complete(source: str | Path, allow_partial: bool = False) -> None:
    """Refuse to read a cai output folder whose run is unfinished (``complete: false`` in
    its run.json), unless ``allow_partial``; then warn and go on."""
    run_file = Path(source).expanduser() / "run.json"
    if not run_file.is_file():
        return
    try:
        state = json.loads(run_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CaiError(f"{run_file}: cannot read it ({e}); is {source} a cai output?") from None
    if not isinstance(state, dict) or state.get("complete", True):
        return
    if not allow_partial:
        raise CaiError(
            f"{source} holds an unfinished run (complete: false in {run_file}); finish it by "
            "rerunning its command, or pass --allow-partial to read what it holds"
        )
    tqdm.write(f"warning: {source} holds an unfinished run; reading it (--allow-partial)")


def fail_without_rows(out_dir: Path, total: int, rejects: list[Reject]) -> None:
    """Every row was rejected: write ``rejects.jsonl`` and raise a ``CaiError`` saying why."""
    path = Path(out_dir) / "rejects.jsonl"
    write_rejects(path, rejects)
    reasons = Counter(r.reason.split(":")[0].split(" (")[0] for r in rejects)
    why = "; ".join(f"{reason} ({n})" for reason, n in reasons.most_common())
    raise CaiError(f"no rows to process: all {total} rows were rejected ({why}); see {path}")
