"""Small statistics shared by calibration and evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_ci(values: Sequence[float], n_boot: int = 1000, seed: int = 0) -> list[float]:
    """A seeded 95% percentile bootstrap interval of the mean of ``values``."""
    scores = np.asarray(values, dtype=float)
    if scores.size == 0:
        return [float("nan"), float("nan")]
    rng, n = np.random.default_rng(seed), len(scores)
    chunks = [scores[rng.integers(0, n, (min(100, n_boot - s), n))] for s in range(0, n_boot, 100)]
    boot = np.concatenate([c.mean(axis=1) for c in chunks])
    return [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """The probability that a random positive scores above a random negative (ties: half)."""
    pairs = len(positives) * len(negatives)
    if not pairs:
        raise ValueError("roc_auc needs at least one positive and one negative score")
    return sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives) / pairs
