"""`cai.scorers.refusal`: the phrase detector."""

from __future__ import annotations


def test_refusal_detector():
    from cai.scorers.refusal import is_refusal

    for text in [
        "I'm sorry, but I can't help with that.",
        "As an AI, I cannot do this.",
        "I won't provide instructions for that.",
        "I must decline this request.",
    ]:
        assert is_refusal(text), text
    for text in [
        "Sure! Preheat the oven to 180 degrees.",
        "The capital of France is Paris.",
        "You can't go wrong with a good night's sleep.",
    ]:
        assert not is_refusal(text), text
