"""SL-CAI: the critique-and-revision loop (``Reviser``) and its batch job."""

from __future__ import annotations

from cai.revise.loop import Reviser, principle_stats
from cai.revise.run import build_reviser, dry_run, run_revisions, summary_lines

__all__ = [
    "Reviser",
    "build_reviser",
    "dry_run",
    "principle_stats",
    "run_revisions",
    "summary_lines",
]
