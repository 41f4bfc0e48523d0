"""The batch-job skeleton: chunks, the row journal, resume, locks, the generation cache, merge."""

from __future__ import annotations

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
)
from cai.jobs.journal import RowJournal, row_sha256
from cai.jobs.merge import merge_shards

__all__ = [
    "GenerationCache",
    "JobResult",
    "RowJournal",
    "RowsFailed",
    "cache_key",
    "check_input_complete",
    "check_not_overlapping",
    "check_output_dir",
    "fail_without_rows",
    "finish_run",
    "merge_outputs",
    "merge_shards",
    "output_lock",
    "row_sha256",
    "run_chunks",
    "select_shard",
    "shard_of",
]
