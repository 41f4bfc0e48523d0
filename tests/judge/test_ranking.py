"""Pair selection, Bradley–Terry fitting and rank comparison in cai.judge.ranking."""

from __future__ import annotations

import math
import random

import pytest

from cai.judge.ranking import (
    all_pairs,
    bradley_terry,
    bt_probability,
    budgeted_pairs,
    kendall_tau,
    ranking,
)

CLEAN = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]


def _connected(k: int, pairs: list[tuple[int, int]]) -> bool:
    parent = list(range(k))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in pairs:
        parent[find(i)] = find(j)
    return len({find(x) for x in range(k)}) <= 1


def _simulate(
    truth: list[float], pairs: list[tuple[int, int]], per_pair: int, seed: int
) -> list[tuple[int, int, float]]:
    rng = random.Random(seed)
    comps = []
    for i, j in pairs:
        p = bt_probability(truth[i], truth[j])
        for _ in range(per_pair):
            comps.append((i, j, 1.0 if rng.random() < p else 0.0))
    return comps


@pytest.mark.parametrize("k", [0, 1, 2, 5, 8])
def test_all_pairs_count_and_unique(k):
    pairs = all_pairs(k)
    assert len(pairs) == k * (k - 1) // 2
    assert len(set(pairs)) == len(pairs)
    assert all(0 <= i < j < k for i, j in pairs)


@pytest.mark.parametrize("k", [2, 3, 5, 8, 12])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_budgeted_pairs_connected_within_budget(k, seed):
    total = k * (k - 1) // 2
    for budget in sorted({k - 1, k, (k - 1 + total) // 2, total - 1, total, total + 5}):
        if budget < k - 1:
            continue
        pairs = budgeted_pairs(k, budget, random.Random(seed))
        assert len(pairs) == min(budget, total)
        assert len(set(pairs)) == len(pairs)
        assert all(0 <= i < j < k for i, j in pairs)
        assert _connected(k, pairs)


def test_budgeted_pairs_deterministic_and_all_when_budget_large():
    assert budgeted_pairs(6, 9, random.Random(3)) == budgeted_pairs(6, 9, random.Random(3))
    assert budgeted_pairs(6, 15, random.Random(0)) == all_pairs(6)


def test_budgeted_pairs_rejects_too_small_budget():
    with pytest.raises(ValueError, match="at least k - 1 = 5"):
        budgeted_pairs(6, 4, random.Random(0))


def test_bradley_terry_recovers_order_from_hard_outcomes():
    comps = _simulate(CLEAN, all_pairs(6), 200, seed=11)
    fit = bradley_terry(6, comps)
    assert kendall_tau(fit, CLEAN) == 1.0
    assert ranking(fit) == [5, 4, 3, 2, 1, 0]
    assert abs(sum(fit)) < 1e-9
    assert max(abs(f - t) for f, t in zip(fit, CLEAN)) < 0.5


def test_bradley_terry_recovers_shuffled_random_strengths():
    rng = random.Random(5)
    truth = [rng.gauss(0.0, 1.5) for _ in range(6)]
    fit = bradley_terry(6, _simulate(truth, all_pairs(6), 300, seed=2))
    assert kendall_tau(fit, truth) > 0.7


def test_bradley_terry_exact_soft_labels_give_true_scores():
    truth = [0.3, -1.2, 2.0, 0.0, -0.4, 1.1]
    comps = [(i, j, bt_probability(truth[i], truth[j])) for i, j in all_pairs(6)]
    fit = bradley_terry(6, comps, prior=0.0)
    mean = sum(truth) / len(truth)
    assert max(abs(f - (t - mean)) for f, t in zip(fit, truth)) < 1e-3


def test_bradley_terry_perfect_separation_stays_finite():
    comps = [(2, j, 1.0) for j in range(5) if j != 2] * 10
    comps += [(0, 1, 0.5), (3, 4, 0.6)]
    fit = bradley_terry(5, comps)
    assert all(math.isfinite(v) for v in fit)
    assert ranking(fit)[0] == 2


def test_bradley_terry_uncompared_candidate_stays_finite():
    fit = bradley_terry(4, [(0, 1, 1.0), (1, 2, 0.0)])
    assert all(math.isfinite(v) for v in fit)
    assert fit[3] == pytest.approx(0.0, abs=1e-9)
    assert bradley_terry(3, []) == [0.0, 0.0, 0.0]


def test_bradley_terry_budgeted_pairs_recover_order():
    pairs = budgeted_pairs(6, 9, random.Random(4))
    assert len(pairs) == 9
    fit = bradley_terry(6, _simulate(CLEAN, pairs, 200, seed=11))
    assert kendall_tau(fit, CLEAN) == 1.0


def test_bradley_terry_validates_input():
    with pytest.raises(ValueError):
        bradley_terry(3, [(0, 3, 1.0)])
    with pytest.raises(ValueError):
        bradley_terry(3, [(1, 1, 1.0)])
    with pytest.raises(ValueError):
        bradley_terry(3, [(0, 1, 1.5)])


def test_ranking_breaks_ties_by_index():
    assert ranking([0.1, 0.9, 0.1, 0.5]) == [1, 3, 0, 2]
    assert ranking([]) == []


def test_kendall_tau_known_values():
    a = [1.0, 2.0, 3.0, 4.0]
    assert kendall_tau(a, a) == 1.0
    assert kendall_tau(a, a[::-1]) == -1.0
    assert kendall_tau(a, [1.0, 3.0, 2.0, 4.0]) == pytest.approx(2 / 3)
    # tau-b with ties: 2 concordant, 0 discordant, one tie in b -> 2 / sqrt(3 * 2)
    assert kendall_tau([1.0, 2.0, 3.0], [1.0, 2.0, 2.0]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(kendall_tau([1.0, 1.0], [1.0, 2.0]))
    with pytest.raises(ValueError):
        kendall_tau([1.0], [1.0, 2.0])


def test_bt_probability():
    assert bt_probability(0.0, 0.0) == 0.5
    assert bt_probability(1.0, 0.0) == pytest.approx(1 / (1 + math.exp(-1)))
    assert bt_probability(800.0, 0.0) == 1.0
    assert bt_probability(-800.0, 0.0) == 0.0
