"""Fitted judge weights: a logistic regression over judge features, fitted on gold pairs.

Each scoring mode gives a pair (a, b) a real *feature* oriented "a is better" and
antisymmetric: swapping a and b negates it. An ``Ensemble`` scores a pair as
``logit = sum_f w_f * feature_f`` and ``P(a better) = sigmoid(logit)``.

There is no intercept: with antisymmetric features an intercept could only learn "prefer the
first response", a position bias. Without one, swapping the pair negates the logit, so
P(a over b) + P(b over a) = 1 by construction.

The weights file (``FORMAT``) is plain JSON, never pickle::

    {"format": "cai-judge-weights/1", "features": ["logprob", "length"],
     "weights": [1.3, -0.02], "meta": {"n": 219, "l2": 0.01, "fitted_on": "...", ...}}

The weights apply to raw feature values; ``meta`` is provenance only and not used to score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cai import __version__
from cai._util import canonical_hash, write_json_atomic
from cai.errors import CaiError

FEATURES: tuple[str, ...] = ("logprob", "debiased", "contrast_sum", "contrast_mean",
                             "likelihood_mean", "pointwise", "length")  # fmt: skip
"""The feature names a weights file may use; any other name is an error."""
FORMAT = "cai-judge-weights/1"
_MAX_ITER, _TOL = 50, 1e-9


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _problem(features: Sequence[str], weights: Sequence[float] | None = None) -> str | None:
    """What is wrong with the features (and weights, if given), as "field: why", or None."""
    for i, f in enumerate(features):
        if f not in FEATURES:
            return f"features[{i}]: unknown feature {f!r}; known: {', '.join(FEATURES)}"
        if f in features[:i]:
            return f"features[{i}]: {f!r} appears twice"
    if weights is None:
        return None
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            return f"weights[{i}]: {w!r} is not a finite number"
    if len(weights) != len(features):
        return f"weights: {len(weights)} values for {len(features)} features"
    return None


@dataclass(frozen=True)
class Ensemble:
    """Weights over judge features; ``logit(rows)`` scores pairs, ``save``/``load`` keep it."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    meta: dict = field(default_factory=dict, hash=False)
    """Free JSON-safe provenance (gold file and its sha256, n, l2, cv figures, cai version)."""

    def __post_init__(self) -> None:
        if problem := _problem(self.features, self.weights):
            raise CaiError(f"bad judge weights: {problem}")

    def logit(self, rows: list[dict[str, float]]) -> list[float]:
        """``sum_f w_f * row[f]`` per row; a row missing a feature raises CaiError naming it."""
        out = []
        for i, row in enumerate(rows):
            missing = [f for f in self.features if f not in row]
            if missing:
                raise CaiError(f"row {i} has no feature {', '.join(map(repr, missing))}")
            out.append(sum(w * float(row[f]) for f, w in zip(self.features, self.weights)))
        return out

    def p(self, rows: list[dict[str, float]]) -> list[float]:
        """P(a is better) per row: the sigmoid of ``logit``."""
        return _sigmoid(np.asarray(self.logit(rows), dtype=float)).tolist()

    @property
    def sha256(self) -> str:
        """Hash of what scoring depends on (features and weights, not meta), for provenance."""
        return canonical_hash({"features": list(self.features), "weights": list(self.weights)})

    def save(self, path: Path) -> None:
        """Write the JSON weights file (see the module docstring) atomically."""
        data = {"format": FORMAT, "features": list(self.features),
                "weights": list(self.weights), "meta": self.meta}  # fmt: skip
        try:
            json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise CaiError(f"{path}: meta is not JSON-safe ({e})") from None
        write_json_atomic(path, data)

    @classmethod
    def load(cls, path: Path) -> Ensemble:
        """Read and check a weights file; any problem is a CaiError naming the file and field."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CaiError(f"cannot read judge weights {path}: {e}") from None
        if not isinstance(data, dict):
            raise CaiError(f"{path}: expected a JSON object with format, features, weights")
        if data.get("format") != FORMAT:
            raise CaiError(f"{path}: format is {data.get('format')!r}, expected {FORMAT!r}")
        features, weights, meta = data.get("features"), data.get("weights"), data.get("meta", {})
        for name, value, kind in (("features", features, list), ("weights", weights, list),
                                  ("meta", meta, dict)):  # fmt: skip
            if not isinstance(value, kind):
                raise CaiError(f"{path}: {name} must be a JSON {kind.__name__}, got {value!r}")
        bad = [i for i, f in enumerate(features) if not isinstance(f, str)]
        problem = f"features[{bad[0]}]: not a string" if bad else _problem(features, weights)
        if problem:
            raise CaiError(f"{path}: {problem}")
        return cls(tuple(features), tuple(float(w) for w in weights), meta)


def _check_x(X: np.ndarray, features: Sequence[str], sample_weight: np.ndarray | None):
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != len(features):
        raise CaiError(f"X has shape {X.shape}; expected (n_pairs, {len(features)} features)")
    if not np.isfinite(X).all():
        raise CaiError("X has non-finite values; drop or fix those pairs before fitting")
    sw = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    if sw.shape != (len(X),) or not np.isfinite(sw).all() or (sw < 0).any():
        raise CaiError(f"sample_weight must be {len(X)} finite non-negative numbers")
    return X, sw


def fit(
    X: np.ndarray,
    features: Sequence[str],
    *,
    l2: float = 1e-2,
    sample_weight: np.ndarray | None = None,
    meta: dict | None = None,
) -> Ensemble:
    """Fit weights on gold pairs by Newton's method (IRLS), without intercept.

    ``X`` is (n_pairs, n_features), each row oriented "correct minus incorrect", so every
    label is "first is better". Maximises ``sum_i sw_i log sigmoid(w . x_i) - l2/2 |w|^2``
    (the same as training on (x, 1) and (-x, 0)). ``l2 > 0`` keeps w finite on separable data
    and puts an all-zero column's weight at 0. The fit runs on columns divided by their RMS,
    so ``l2`` means the same whatever a feature's units; the stored weights are scaled back
    and apply to raw features. ``meta`` is added to the fitted n, l2 and cai version.
    """
    features = tuple(features)
    X, sw = _check_x(X, features, sample_weight)
    if not l2 > 0:
        raise CaiError(f"l2 must be > 0 (it keeps the weights finite), got {l2}")
    if problem := _problem(features):
        raise CaiError(problem)
    rms = np.sqrt(np.mean(X**2, axis=0)) if len(X) else np.zeros(len(features))
    scale = np.where(rms > 0, rms, 1.0)
    Z = X / scale

    def objective(w: np.ndarray) -> float:
        return float(-sw @ np.logaddexp(0.0, -(Z @ w)) - l2 / 2 * w @ w)

    w, iterations = np.zeros(len(features)), 0
    while iterations < _MAX_ITER:
        iterations += 1
        s = _sigmoid(Z @ w)
        grad = Z.T @ (sw * (1.0 - s)) - l2 * w
        hess = (Z.T * (sw * s * (1.0 - s))) @ Z + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        t, before = 1.0, objective(w)
        while objective(w + t * step) < before and t > 1e-6:  # halve an overshooting step
            t /= 2
        w = w + t * step
        if np.max(np.abs(t * step), initial=0.0) < _TOL * (1.0 + np.max(np.abs(w), initial=0.0)):
            break
    info = {"n": len(X), "l2": l2, "iterations": iterations, "cai_version": __version__}
    return Ensemble(features, tuple(float(v) for v in w / scale), {**info, **(meta or {})})


def balanced_weights(correct_longer: Sequence[bool | None]) -> np.ndarray:
    """Sample weights under which "correct is longer" and "correct is shorter" pairs weigh
    the same in total (ties and None weigh 1); the mean weight is 1.

    In gold sets the better response is often the longer one (54% of HHH pairs), so an
    unweighted fit can score well by rewarding length. With these weights that no longer
    pays: the fit optimises length-balanced accuracy. Raises CaiError if one group is empty.
    """
    flags = list(correct_longer)
    longer = np.array([f is True for f in flags])
    shorter = np.array([f is False for f in flags])
    n_l, n_s = int(longer.sum()), int(shorter.sum())
    if (n_l == 0) != (n_s == 0):
        raise CaiError(f"cannot balance by length: {n_l} pairs with the correct response "
                       f"longer, {n_s} with it shorter")  # fmt: skip
    w = np.ones(len(flags))
    if n_l:  # each group keeps its combined count, split evenly: (n_l + n_s) / 2 each
        w[longer], w[shorter] = (n_l + n_s) / (2 * n_l), (n_l + n_s) / (2 * n_s)
    return w


def out_of_fold(
    X: np.ndarray,
    features: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
    l2: float = 1e-2,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Cross-validated logits: row i's logit comes from a fit that never saw row i.

    Folds are ``np.array_split(np.random.default_rng(seed).permutation(n), folds)``; each is
    scored by a ``fit`` on the others (with their sample weights). Use these to report an
    honest accuracy for fitted weights; the in-sample fit flatters itself.
    """
    X, sw = _check_x(X, features, sample_weight)
    if folds < 2 or len(X) < folds:
        raise CaiError(f"out_of_fold needs 2 <= folds <= n_pairs; got {folds} folds, {len(X)}")
    out = np.empty(len(X))
    for held in np.array_split(np.random.default_rng(seed).permutation(len(X)), folds):
        train = np.setdiff1d(np.arange(len(X)), held)
        model = fit(X[train], features, l2=l2, sample_weight=sw[train])
        out[held] = X[held] @ np.asarray(model.weights)
    return out
