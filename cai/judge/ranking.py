"""K-wise AI-feedback rankings: pick which pairs to compare, fit Bradley–Terry, compare orders.

A judge that ranks k candidates is asked about pairs; :func:`budgeted_pairs` picks a
connected subset of pairs to save calls, :func:`bradley_terry` turns the (possibly
soft) pairwise verdicts into one log-strength per candidate, and :func:`ranking` /
:func:`kendall_tau` read off and compare the resulting orders. Pure Python, deterministic.
"""

from __future__ import annotations

import math
import random


def all_pairs(k: int) -> list[tuple[int, int]]:
    """Every unordered pair ``(i, j)`` with ``0 <= i < j < k``, in lexicographic order."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


def budgeted_pairs(k: int, budget: int, rng: random.Random) -> list[tuple[int, int]]:
    """At most ``budget`` pairs (sorted, ``i < j``) whose comparison graph connects all k.

    A random spanning path comes first (closed into a cycle when the budget allows, so
    every candidate is compared at least twice), then random extra pairs fill the budget.
    Returns :func:`all_pairs` when ``budget >= k*(k-1)/2``; raises ``ValueError`` when
    ``budget < k - 1``, the fewest pairs that can connect k candidates.
    """
    pairs = all_pairs(k)
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if budget >= len(pairs):
        return pairs
    if budget < k - 1:
        raise ValueError(
            f"budget {budget} cannot connect {k} candidates: at least k - 1 = {k - 1} pairs needed"
        )
    order = list(range(k))
    rng.shuffle(order)
    chosen = {_edge(order[t], order[t + 1]) for t in range(k - 1)}
    if k >= 3 and budget >= k:
        chosen.add(_edge(order[-1], order[0]))
    rest = [p for p in pairs if p not in chosen]
    chosen.update(rng.sample(rest, budget - len(chosen)))
    return sorted(chosen)


def _edge(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def bt_probability(si: float, sj: float) -> float:
    """Bradley–Terry probability that i beats j: ``sigmoid(si - sj)``, overflow-safe."""
    x = si - sj
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _objective(s: list[float], comps: list[tuple[int, int, float]], prior: float) -> float:
    total = -0.5 * prior * sum(v * v for v in s)
    for i, j, p in comps:
        d = s[i] - s[j]
        total += p * _log_sigmoid(d) + (1.0 - p) * _log_sigmoid(-d)
    return total


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve ``a x = b`` by Gaussian elimination with partial pivoting (small dense k)."""
    n = len(b)
    m = [row[:] + [b[r]] for r, row in enumerate(a)]
    for c in range(n):
        piv = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[piv] = m[piv], m[c]
        if m[c][c] == 0.0:
            raise ZeroDivisionError("singular Newton system")
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            if f:
                for cc in range(c, n + 1):
                    m[r][cc] -= f * m[c][cc]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][cc] * x[cc] for cc in range(r + 1, n))) / m[r][r]
    return x


def bradley_terry(
    k: int,
    comparisons: list[tuple[int, int, float]],
    *,
    prior: float = 0.01,
    iters: int = 1000,
    tol: float = 1e-9,
) -> list[float]:
    """Maximum-a-posteriori Bradley–Terry log-strengths (mean zero) for k candidates.

    Each comparison ``(i, j, p)`` has weight 1 and means "P(i beats j) = p": p wins for i
    and ``1 - p`` for j, so hard 0/1 outcomes and soft judge probabilities mix freely.
    The log-likelihood plus a Gaussian prior ``-prior/2 * sum(s**2)`` is maximised by
    damped Newton steps (strictly concave for ``prior > 0``), stopping when the largest
    step is below ``tol`` or after ``iters`` steps. With ``prior > 0`` perfect separation
    and candidates never compared stay finite (uncompared ones get 0). ``prior=0`` gives
    the plain MLE, which is finite only for a connected graph without perfect separation.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if prior < 0:
        raise ValueError(f"prior must be >= 0, got {prior}")
    comps: list[tuple[int, int, float]] = []
    for i, j, p in comparisons:
        if not (0 <= i < k and 0 <= j < k) or i == j:
            raise ValueError(f"bad comparison pair ({i}, {j}) for k={k}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"comparison probability must be in [0, 1], got {p}")
        comps.append((int(i), int(j), float(p)))
    s = [0.0] * k
    if k < 2:
        return s
    current = _objective(s, comps, prior)
    for _ in range(iters):
        grad = [-prior * v for v in s]
        # Negative Hessian + 1/k (the likelihood is flat along all-ones) + a tiny ridge.
        hess = [
            [1.0 / k + ((prior + 1e-12) if r == c else 0.0) for c in range(k)] for r in range(k)
        ]
        for i, j, p in comps:
            q = bt_probability(s[i], s[j])
            g, w = p - q, q * (1.0 - q)
            grad[i] += g
            grad[j] -= g
            hess[i][i] += w
            hess[j][j] += w
            hess[i][j] -= w
            hess[j][i] -= w
        step = _solve(hess, grad)
        t = 1.0
        while t >= 1e-10:  # backtrack until the objective does not get worse
            trial = [v + t * d for v, d in zip(s, step)]
            mean = sum(trial) / k
            trial = [v - mean for v in trial]
            value = _objective(trial, comps, prior)
            if value >= current:
                s, current = trial, value
                break
            t *= 0.5
        if t < 1e-10 or t * max(abs(d) for d in step) < tol:
            break
    return s


def ranking(scores: list[float]) -> list[int]:
    """Candidate indices from best (highest score) to worst; ties go to the lower index."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall tau-b between two score lists (O(k^2)); NaN if either list is all ties."""
    if len(a) != len(b):
        raise ValueError(f"score lists differ in length: {len(a)} != {len(b)}")
    concordant = discordant = ties_a = ties_b = 0
    n = len(a)
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0:
                ties_a += 1
            if db == 0:
                ties_b += 1
            if da * db > 0:
                concordant += 1
            elif da * db < 0:
                discordant += 1
    pairs = n * (n - 1) // 2
    denom = math.sqrt((pairs - ties_a) * (pairs - ties_b))
    return (concordant - discordant) / denom if denom else math.nan
