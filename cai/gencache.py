"""A content-addressed cache of generations, in SQLite.

Each generation is keyed by everything that produced it: the backend and model, the
sampling settings, the row's seed, the stage, and the exact conversation sent (which
contains the principle's text, the rendered template and any few-shot block). Edit one
principle and rerun: only the rows that used it miss the cache.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from cai.backends.base import Generation


def cache_key(**parts: object) -> str:
    """sha256 of the canonical JSON of ``parts``."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class GenerationCache:
    """Generation results by key. ``path=None`` disables caching (every lookup misses).

    Safe to share between threads (concurrent chunks): one connection, one lock."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=60, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS generations "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._db.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, Generation]:
        keys = list(keys)
        found: dict[str, Generation] = {}
        with self._lock:
            if self._db is not None and keys:
                for start in range(0, len(keys), 500):
                    chunk = keys[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT key, value FROM generations WHERE key IN ({marks})"
                    for key, value in self._db.execute(sql, chunk):
                        d = json.loads(value)
                        found[key] = Generation(d["text"], d["num_tokens"], d["finish_reason"])
            self.hits += len(found)
            self.misses += len(keys) - len(found)
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
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO generations VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
