"""Live progress for batch jobs: the stage, its work done and tokens per second.

Code deep below a job (the revise loop, a backend's decode loop, the HTTP client) reports
through a few module functions, with no object passed down to it:

- ``stage(name)``: a new stage starts (``initial``, ``critique``, ``score`` ...);
- ``begin(n)``, ``advance(n)``: ``n`` more items (sequences, requests) to do, or done, in
  the current stage;
- ``add_tokens(n, done=0)``: ``n`` more tokens generated (and ``done`` items finished).
  The transformers backend calls it on every decode step with the number of live
  sequences; vLLM when a call returns; the HTTP backend, through ``response(data)``, per
  response.

They go to the reporter a job installs with ``listening(reporter)`` and cost one global
read when nobody listens. ``JobBar`` is a job's tqdm bar of finished rows that listens:
its postfix shows the stage, the stage's items and tok/s, redrawn as the hooks fire (at
most every ``REFRESH_SECONDS`` on a terminal, ``LOG_REFRESH_SECONDS`` into a log file), so
the bar moves inside a chunk, not only between chunks::

    revisions:  0%|     | 0/32 [00:04<?, ?row/s, stage=critique 16/32, tok/s=41.3]

This module imports nothing from cai; backends may import it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

REFRESH_SECONDS = 0.5
"""Least time between two redraws caused by hooks; a new stage redraws at once."""
LOG_REFRESH_SECONDS = 10.0
"""The same when the bar goes to a file or pipe, not a terminal: a long job's log stays small."""


@dataclass(frozen=True)
class Snapshot:
    """What a reporter has seen since it started."""

    stage: str
    """The current stage ("" before the first)."""
    done: int
    """Items of the current stage finished."""
    total: int
    """Items of the current stage announced by ``begin`` (0 if none were)."""
    tokens: int
    """Tokens generated since the reporter started, over every stage."""
    seconds: float
    """Time since the reporter started."""


class Reporter:
    """Thread-safe counters behind the hooks; calls ``on_tick`` at most every ``interval`` s.

    ``on_tick`` runs in the thread that called the hook (a decode loop, an HTTP worker),
    outside the reporter's lock.
    """

    def __init__(
        self,
        on_tick: Callable[[Snapshot], None] | None = None,
        interval: float | None = None,
    ) -> None:
        self._on_tick = on_tick
        self._interval = REFRESH_SECONDS if interval is None else interval
        self._lock = threading.Lock()
        self._start = time.perf_counter()
        self._last_tick = -float("inf")
        self._stage, self._done, self._total, self._tokens = "", 0, 0, 0

    def stage(self, name: str) -> None:
        with self._lock:
            self._stage, self._done, self._total = name, 0, 0
        self._tick(force=True)

    def begin(self, n: int) -> None:
        with self._lock:
            self._total += n
        self._tick()

    def advance(self, n: int) -> None:
        with self._lock:
            self._done += n
        self._tick()

    def add_tokens(self, n: int, done: int = 0) -> None:
        with self._lock:
            self._tokens += n
            self._done += done
        self._tick()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> Snapshot:
        seconds = time.perf_counter() - self._start
        return Snapshot(self._stage, self._done, self._total, self._tokens, seconds)

    def _tick(self, force: bool = False) -> None:
        if self._on_tick is None:
            return
        with self._lock:
            now = time.perf_counter()
            if not force and now - self._last_tick < self._interval:
                return
            self._last_tick = now
            snap = self._snapshot()
        self._on_tick(snap)


_current: Reporter | None = None


@contextmanager
def listening(reporter: Reporter) -> Iterator[Reporter]:
    """Send every hook call to ``reporter`` while the block runs (in every thread)."""
    global _current
    previous, _current = _current, reporter
    try:
        yield reporter
    finally:
        _current = previous


def stage(name: str) -> None:
    """A new stage starts: its name is shown and its item counts start from zero."""
    r = _current
    if r is not None:
        r.stage(name)


def begin(n: int) -> None:
    """``n`` more items (sequences, requests) are to be done in this stage."""
    r = _current
    if r is not None:
        r.begin(n)


def advance(n: int = 1) -> None:
    """``n`` items of this stage are done."""
    r = _current
    if r is not None:
        r.advance(n)


def add_tokens(n: int, done: int = 0) -> None:
    """``n`` tokens were generated (and ``done`` items finished)."""
    r = _current
    if r is not None:
        r.add_tokens(n, done)


def response(answer: Any) -> Any:
    """An HTTP backend got a good ``answer``: one request done, and its tokens counted
    (``answer.num_tokens`` of a ``Generation``, or ``usage.completion_tokens`` of a JSON
    body; scores count none). Returns ``answer`` unchanged, to wrap a call in place."""
    r = _current
    if r is not None:
        tokens = getattr(answer, "num_tokens", None)
        if isinstance(answer, dict):
            usage = answer.get("usage")
            tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        r.add_tokens(tokens if isinstance(tokens, int) and tokens > 0 else 0, done=1)
    return answer


def listening_now() -> bool:
    """Whether a job listens: lets a backend skip work done only for progress."""
    return _current is not None


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class JobBar:
    """A tqdm bar of finished rows that also shows the live stage, its items and tok/s.

    Use it as a context manager: inside, it listens to the hooks (``listening``).
    ``update(rows, tokens=...)`` moves the bar when rows finish; ``tokens``, if the job
    counts its own generated tokens, is shown when it is more than the hooks counted.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        unit: str = "row",
        initial: int = 0,
        interval: float | None = None,
        **tqdm_kwargs: Any,
    ) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, **tqdm_kwargs
        )
        if interval is None:
            live = _is_tty(self.bar.fp) or "notebook" in type(self.bar).__module__
            interval = REFRESH_SECONDS if live else LOG_REFRESH_SECONDS
        self.reporter = Reporter(self._tick, interval)
        self.unit = unit
        self.finished = 0
        self.counted_tokens = 0
        self._listening: Any = None

    def __enter__(self) -> JobBar:
        self._listening = listening(self.reporter)
        self._listening.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listening.__exit__(*exc)
        self.bar.close()

    def postfix(self, snap: Snapshot) -> dict[str, str]:
        """The bar's postfix: stage (with its items), rows/s once rows finish, tok/s."""
        out: dict[str, str] = {}
        if snap.stage:
            count = (
                f"{min(snap.done, snap.total)}/{snap.total}" if snap.total else str(snap.done or "")
            )
            out["stage"] = f"{snap.stage} {count}".strip()
        elapsed = max(snap.seconds, 1e-9)
        if self.finished:
            out[f"{self.unit}s/s"] = f"{self.finished / elapsed:.2f}"
        tokens = max(snap.tokens, self.counted_tokens)
        if tokens:
            out["tok/s"] = f"{tokens / elapsed:.1f}"
        return out

    def _tick(self, snap: Snapshot) -> None:
        self.bar.set_postfix(self.postfix(snap), refresh=True)

    def update(self, rows: int, tokens: int | None = None) -> None:
        """``rows`` more rows finished; ``tokens``: the job's own count of generated tokens."""
        self.finished += rows
        if tokens is not None:
            self.counted_tokens = tokens
        self.bar.update(rows)
        self.bar.set_postfix(self.postfix(self.reporter.snapshot()), refresh=True)
