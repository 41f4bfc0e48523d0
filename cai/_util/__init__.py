"""Small shared helpers: atomic files, statistics, plots."""

from __future__ import annotations

from cai._util.files import atomic_file, write_json_atomic, write_text_atomic
from cai._util.stats import bootstrap_ci

__all__ = ["atomic_file", "bootstrap_ci", "write_json_atomic", "write_text_atomic"]
