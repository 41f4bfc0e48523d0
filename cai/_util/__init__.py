"""Small shared helpers: atomic files, hashing, statistics, plots."""

from __future__ import annotations

from cai._util.files import atomic_file, write_json_atomic, write_text_atomic
from cai._util.hashing import canonical_hash, canonical_json, file_sha256
from cai._util.stats import bootstrap_ci

__all__ = [
    "atomic_file",
    "bootstrap_ci",
    "canonical_hash",
    "canonical_json",
    "file_sha256",
    "write_json_atomic",
    "write_text_atomic",
]
