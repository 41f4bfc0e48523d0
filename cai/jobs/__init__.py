"""The one batch-job skeleton (``BatchJob``): chunks, the row journal, resume, locks, the
generation cache, merge; one schema version, one fingerprint, one way to hash
(``canonical_hash``)."""

from __future__ import annotations

from cai._util import canonical_hash, canonical_json
from cai.jobs.cache import GenerationCache, cache_key
from cai.jobs.chunks import (
    JobResult,
    RowsFailed,
    check_input_complete,
    check_not_overlapping,
    check_output_dir,
    fail_without_rows,
    finish_run,
    merge_outputs,
    output_lock,
    run_chunks,
    select_shard,
    shard_of,
    strip_key,
)
from cai.jobs.job import BatchJob
from cai.jobs.journal import RowJournal, row_sha256
from cai.jobs.merge import merge_shards
from cai.jobs.provenance import RUN_ONLY_FIELDS, SCHEMA_VERSION, fingerprint, provenance

__all__ = [
    "RUN_ONLY_FIELDS",
    "SCHEMA_VERSION",
    "BatchJob",
    "GenerationCache",
    "JobResult",
    "RowJournal",
    "RowsFailed",
    "cache_key",
    "canonical_hash",
    "canonical_json",
    "check_input_complete",
    "check_not_overlapping",
    "check_output_dir",
    "fail_without_rows",
    "finish_run",
    "fingerprint",
    "merge_outputs",
    "merge_shards",
    "output_lock",
    "provenance",
    "row_sha256",
    "run_chunks",
    "select_shard",
    "shard_of",
    "strip_key",
]
