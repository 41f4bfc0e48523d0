"""A content-addressed cache of generations, in SQLite.

Each generation is keyed by everything that produced it: the backend and model, the
sampling settings, the row's seed, the stage, and the exact conversation sent (which
contains the principle's text, the rendered template and any few-shot block). Edit one
principle and rerun: only the rows that used it miss the cache.

Errors: a cache that cannot be opened (a read-only folder, a file that is not a cache)
is a ``CaiError`` naming the file and suggesting ``--no-cache``. A cache another process
keeps locked past ``BUSY_TIMEOUT`` seconds, or one that fails mid-run, is switched off for
the rest of the run with one warning: the run goes on and keeps its generations.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

from cai._util import canonical_hash
from cai.backends.base import Generation
from cai.errors import CaiError

BUSY_TIMEOUT = 10.0
"""Seconds to wait for another process's write lock on the cache before going on without it."""


def cache_key(**parts: object) -> str:
    """``canonical_hash`` of ``parts``: sha256 of their canonical JSON."""
    return canonical_hash(parts)


class GenerationCache:
    """Generation results by key. ``path=None`` disables caching (every lookup misses).

    Safe to share between threads (concurrent chunks): one connection, one lock."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._open(Path(path))

    def _open(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CaiError(
                f"cannot create the generation cache folder {path.parent} ({e.strerror}); "
                "pass --cache with a writable path, or --no-cache"
            ) from None
        try:
            self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS generations "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._db.commit()
            self._db.execute("SELECT key, value FROM generations LIMIT 1").fetchall()
        except sqlite3.Error as e:
            if _locked(e):
                self._off(e)
                return
            self.close()
            raise CaiError(_open_error(path, e)) from None

    def _off(self, e: sqlite3.Error) -> None:
        """Go on without the cache after a runtime failure; say so once."""
        if self._db is not None:
            tqdm.write(
                f"warning: generation cache {self.path}: {e}; going on without the cache "
                "for this run (pass --no-cache to silence this)"
            )
        self.close()

    def get_many(self, keys: Iterable[str]) -> dict[str, Generation]:
        keys = list(keys)
        found: dict[str, Generation] = {}
        with self._lock:
            try:
                for start in range(0, len(keys) if self._db is not None else 0, 500):
                    chunk = keys[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT key, value FROM generations WHERE key IN ({marks})"
                    for key, value in self._db.execute(sql, chunk):
                        d = json.loads(value)
                        found[key] = Generation(d["text"], d["num_tokens"], d["finish_reason"])
            except (sqlite3.Error, ValueError, KeyError, TypeError) as e:
                found.clear()
                self._off(e)
        return found

    def put_many(self, items: dict[str, Generation]) -> None:
        if self._db is None or not items:
            return
        now = time.time()
        rows = [
            (
                k,
                json.dumps(
                    {"text": g.text, "num_tokens": g.num_tokens, "finish_reason": g.finish_reason}
                ),
                now,
            )
            for k, g in items.items()
        ]
        with self._lock:
            if self._db is None:
                return
            try:
                with self._db:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO generations VALUES (?, ?, ?)", rows
                    )
            except sqlite3.Error as e:
                self._off(e)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _locked(e: sqlite3.Error) -> bool:
    return "locked" in str(e) or "busy" in str(e)


def _open_error(path: Path, e: sqlite3.Error) -> str:
    """A one-line message for a cache that cannot be opened."""
    text = str(e)
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"the generation cache {path} is corrupt or not a cache ({text}); delete it, "
            "or pass --no-cache (or --cache with another file)"
        )
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return (
            f"cannot write the generation cache {path} ({text}); pass --cache with a "
            "writable path, or --no-cache"
        )
    return f"generation cache {path}: {text}; pass --no-cache to run without it"
