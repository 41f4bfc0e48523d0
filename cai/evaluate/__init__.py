"""Before/after evaluation: toxicity, helpfulness, refusals and win rates, and the report."""

from __future__ import annotations

from cai.evaluate.run import run_evaluation

__all__ = ["run_evaluation"]
