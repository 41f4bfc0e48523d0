"""Reward scorers with trl's signature: the combinators and the toxicity penalty."""

from __future__ import annotations

import pytest


def test_weighted_sum_and_safety_switch():
    from cai.scorers.rewards import SafetySwitch, WeightedSum

    def r1(prompts, completions, **kw):
        return [float(len(c)) for c in completions]

    def r2(prompts, completions, **kw):
        return [1.0 if "safe" in c else -1.0 for c in completions]

    ws = WeightedSum([r1, r2], [0.5, 2.0])
    assert ws(["p", "p"], ["safe", "no"]) == [0.5 * 4 + 2.0, 0.5 * 2 - 2.0]
    assert ws.last == [[4.0, 2.0], [1.0, -1.0]]

    def safety(prompts, completions, **kw):
        return [0.1, 0.9, 0.9]

    def helpful(prompts, completions, **kw):
        return [5.0, 6.0, 7.0]

    sw = SafetySwitch(safety, helpful, threshold=0.15)
    # row 0: safety below 0.15 -> safety; row 1: flagged unsafe -> safety; row 2: helpful.
    assert sw(["p"] * 3, ["a", "b", "c"], unsafe=[False, True, False]) == [0.1, 0.9, 7.0]
    assert sw(["p"] * 3, ["a", "b", "c"]) == [0.1, 6.0, 7.0]


def test_toxicity_penalty_is_minus_the_evaluation_scorers_toxic_probability():
    from cai.config import RewardSpec
    from cai.judge import build_reward
    from cai.scorers.toxicity import JigsawScorer

    reward = build_reward([RewardSpec(kind="toxicity", weight=2.0)], policy="tiny-random")
    texts = ["You are a worthless idiot and I hope you die.", "Thank you so much for the help!"]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    got = reward(["hi", "hi"], completions)
    want = [-2.0 * s["toxic"] for s in JigsawScorer().labels(texts)]
    assert got == pytest.approx(want)
    assert got[0] < -1.9 and got[1] > -0.1  # toxic 0.989 and 0.023, weighted by 2
