"""The one way cai hashes data: sha256 of canonical JSON.

Ids, fingerprints, cache keys and input keys all come from ``canonical_hash``, so one
value gets one hash wherever it is hashed. (Hashes of file bytes are hashes of bytes, and
seeds derived from a hash keep their own recipe: changing them would change the draws.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def canonical_json(obj: object) -> str:
    """``obj`` as canonical JSON: sorted keys, no spaces, raw unicode; values JSON cannot
    hold (paths, tuples' items, dates) as their ``str``."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def canonical_hash(obj: object, n: int | None = None) -> str:
    """sha256 (hex) of ``canonical_json(obj)``, cut to its first ``n`` digits if given.

    >>> canonical_hash({"b": 1, "a": "é"}) == canonical_hash({"a": "é", "b": 1})
    True
    >>> len(canonical_hash([1, 2], 12))
    12
    """
    digest = hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()
    return digest if n is None else digest[:n]


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes: a gold file or a judge's weights file, by content."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
