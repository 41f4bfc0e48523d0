"""Crash-safe, append-only row storage for resumable batch jobs.

Each line is ``{"sha256": <hex>, "row": <row>}``, where the hash is over the row's
canonical JSON. A line cut short by ``kill -9``, or one whose row no longer matches its
hash, is ignored when reading; so is a second row with an id already seen. Every
``append`` is flushed and fsynced before it returns, so a row that ``read`` returns is on
disk, and a job that restarts can skip ``ids()`` and carry on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cai._util import canonical_hash, write_text_atomic
from cai.errors import CaiError


def row_sha256(row: dict) -> str:
    """sha256 of the row's canonical JSON (sorted keys, no spaces, raw unicode)."""
    return canonical_hash(row)


class RowJournal:
    """Rows with a str ``"id"``, one checksummed JSON line each, in a single file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, rows: list[dict]) -> None:
        """Write ``rows`` at the end of the file, then flush and fsync.

        The whole batch is checked first, so a bad row writes nothing. If the file ends in
        a torn line (the previous writer was killed), it is repaired first so that a new
        line never follows a partial one.
        """
        lines = []
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise CaiError(f"journal rows need a str 'id'; got {str(row)[:80]!r}")
            try:
                line = json.dumps(
                    {"sha256": row_sha256(row), "row": row},
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
            except (TypeError, ValueError) as e:
                raise CaiError(f"row {row['id']!r} is not JSON-serialisable: {e}") from e
            lines.append(line + "\n")
        if not lines:
            return
        if self._torn_tail():
            self.repair()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        with open(self.path, "ab") as f:
            f.write("".join(lines).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        if created:
            _fsync_dir(self.path.parent)

    def read(self) -> tuple[list[dict], int]:
        """``(valid rows in file order, number of lines ignored)``; no file reads as empty."""
        valid, bad, _ = self._scan()
        return [row for row, _ in valid], bad

    def ids(self) -> set[str]:
        return {row["id"] for row in self.read()[0]}

    def drop(self, ids: set[str]) -> int:
        """Rewrite the file without the rows of ``ids`` (atomically); return how many went.

        A job calls this before it processes those rows again (their input changed), so
        the new version is the only one: ``read`` keeps the first row of an id it sees.
        """
        valid, _, _ = self._scan()
        keep = [line for row, line in valid if row["id"] not in ids]
        if len(keep) < len(valid):
            write_text_atomic(self.path, "".join(line + "\n" for line in keep))
            _fsync_dir(self.path.parent)
        return len(valid) - len(keep)

    def repair(self) -> int:
        """Rewrite the file with only its valid lines (atomically); return how many were dropped."""
        valid, bad, terminated = self._scan()
        if bad or not terminated:
            write_text_atomic(self.path, "".join(line + "\n" for _, line in valid))
            _fsync_dir(self.path.parent)
        return bad

    def _scan(self) -> tuple[list[tuple[dict, str]], int, bool]:
        """Valid ``(row, line)`` pairs, the bad-line count, and whether the last line is whole."""
        if not self.path.exists():
            return [], 0, True
        data = self.path.read_bytes()
        # Split on b"\n" only: str.splitlines would also split on U+2028 and friends,
        # which ensure_ascii=False leaves raw inside strings.
        chunks = data.split(b"\n")
        if chunks[-1] == b"":
            chunks.pop()
        valid: list[tuple[dict, str]] = []
        seen: set[str] = set()
        bad = 0
        for chunk in chunks:
            row = _parse(chunk)
            if row is None or row["id"] in seen:
                bad += 1
                continue
            seen.add(row["id"])
            valid.append((row, chunk.decode("utf-8")))
        return valid, bad, data == b"" or data.endswith(b"\n")

    def _torn_tail(self) -> bool:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return False
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"


def _parse(chunk: bytes) -> dict | None:
    """The row of one journal line, or None if the line is torn, tampered or malformed."""
    try:
        entry = json.loads(chunk.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("row"), dict):
        return None
    row = entry["row"]
    if not isinstance(row.get("id"), str) or entry.get("sha256") != row_sha256(row):
        return None
    return row


def _fsync_dir(folder: Path) -> None:
    """Make a new or renamed directory entry durable (skipped where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
