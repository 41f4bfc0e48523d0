"""Scorers: toxicity, classifier, profanity, relevance, refusal, and reward scorers.

Reward scorers have trl's reward signature ``f(prompts, completions, **columns) ->
list[float]``: ``ModelReward`` (a reward model), ``ToxicityPenalty``, and the combinators
``WeightedSum`` and ``SafetySwitch``.
"""

from __future__ import annotations

from cai.scorers.rewards import ModelReward, RewardFn, SafetySwitch, ToxicityPenalty, WeightedSum

__all__ = ["ModelReward", "RewardFn", "SafetySwitch", "ToxicityPenalty", "WeightedSum"]
