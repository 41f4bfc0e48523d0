"""A second toxicity signal: ``alt-profanity-check`` (a scikit-learn linear model).

Optional (``pip install 'cai[profanity]'``); it pins scikit-learn and joblib exactly. Its
model file is the installed package's own and is loaded by the package itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from cai.scorers.base import completion_texts


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("profanity_check") is not None


class ProfanityScorer:
    """The probability that each completion is profane."""

    name = "profanity"
    description = "profanity (alt-profanity-check)"
    higher_is_better = False
    __name__ = "profanity"

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float]:
        from profanity_check import predict_prob

        return [float(p) for p in predict_prob(completion_texts(completions))]
