"""Best-of-n sampling: n answers per prompt, the best by reward, written as a dataset."""

from __future__ import annotations

from cai.best_of_n.run import run_best_of_n

__all__ = ["run_best_of_n"]
