"""Scorers, all one ``Scorer`` protocol with trl's reward signature
``scorer(prompts, completions, **columns) -> list[float]`` plus a ``name``, a
``description`` and ``higher_is_better`` (see ``cai.scorers.base``).

- toxicity: ``toxicity_scorer(classifier)`` chooses the classifier (the packaged Jigsaw
  port, ``cai.scorers.toxicity.JigsawScorer``, or a Hugging Face one,
  ``HFClassifierScorer``); both are ``Labelled``;
- ``ProfanityScorer`` (alt-profanity-check), ``RelevanceScorer`` (MiniLM cosine);
- refusal: ``PhraseRefusal``, a ``Detector`` over ``is_refusal``; the judge's
  ``cai.judge.JudgeRefusal`` is the other;
- rewards: ``ModelReward`` (a reward model), ``ToxicityPenalty``, and the combinators
  ``WeightedSum`` and ``SafetySwitch``.
"""

from __future__ import annotations

from cai.scorers.base import Detector, Labelled, Scorer, completion_texts, prompt_texts
from cai.scorers.classifier import HFClassifierScorer, toxicity_scorer
from cai.scorers.profanity import ProfanityScorer
from cai.scorers.refusal import PhraseRefusal, is_refusal
from cai.scorers.relevance import RelevanceScorer
from cai.scorers.rewards import ModelReward, RewardFn, SafetySwitch, ToxicityPenalty, WeightedSum

__all__ = [
    "Detector",
    "HFClassifierScorer",
    "Labelled",
    "ModelReward",
    "PhraseRefusal",
    "ProfanityScorer",
    "RelevanceScorer",
    "RewardFn",
    "SafetySwitch",
    "Scorer",
    "ToxicityPenalty",
    "WeightedSum",
    "completion_texts",
    "is_refusal",
    "prompt_texts",
    "toxicity_scorer",
]
