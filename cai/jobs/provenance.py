"""What every output row says about how it was made: one schema version, one fingerprint.

Every job's rows carry ``provenance(...)``: the schema version of the row layout, the cai
version, and the job's own settings (model, sampling, constitution, templates...). The
run's ``fingerprint`` is the canonical hash of that provenance and of the settings that
shape the rows; when it changes, a rerun starts over (see ``run_chunks``).
"""

from __future__ import annotations

from cai import __version__
from cai._util import canonical_hash

SCHEMA_VERSION = 1
"""The layout of the rows cai writes (revisions, preferences, best-of-n, evaluate's
responses); bumped when a column changes meaning or goes away."""

RUN_ONLY_FIELDS = frozenset(
    {
        "prompts",
        "split",
        "prompt_column",
        "limit",
        "output",
        "chunk_size",
        "concurrent_chunks",
        "test_size",
        "split_scheme",
        "emit_pairs",
        "verify_revisions",
        "num_shards",
        "shard_index",
        "cache",
        "no_cache",
        "allow_partial",
        "push_to_hub",
        "private",
        "quality",
        "quality_gate",
        "quality_reference",
    }
)
"""Config fields that never shape a row: where the input and output are, which rows and
shard to take (each row is keyed by its own input), how rows are batched and split, where
the data goes, and how the finished rows are scored and gated. A change to these resumes
a run instead of starting it over, and shards of one run share a fingerprint."""


def provenance(**fields: object) -> dict:
    """A row's ``provenance``: the schema version and cai version, then ``fields``."""
    return {"schema_version": SCHEMA_VERSION, "cai_version": __version__, **fields}


def fingerprint(provenance: dict, settings: dict | None = None) -> str:
    """16 hex digits that change whenever anything that shapes the rows changes: the
    rows' ``provenance`` and the ``settings`` (a config dump) without ``RUN_ONLY_FIELDS``."""
    shaping = {k: v for k, v in (settings or {}).items() if k not in RUN_ONLY_FIELDS}
    return canonical_hash({"provenance": provenance, "settings": shaping}, 16)
