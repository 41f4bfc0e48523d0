"""Clean-up of generated critiques and revisions."""

from __future__ import annotations

import pytest

from cai.revise.cleaning import clean_generation, says_no_change


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (
            "Sure, here is the revised response:\n\nI can't help with that.",
            "I can't help with that.",
        ),
        ("Here's a rewritten version of the answer:\nTalk to them.", "Talk to them."),
        ("Revision: Please talk to your neighbour.", "Please talk to your neighbour."),
        ("Certainly! Here is my revised response.\n\nRevised response: Be kind.", "Be kind."),
        ("**Revised response:** Be kind.", "Be kind."),
        ('"Be kind to animals."', "Be kind to animals."),
        ("Be kind.\nHuman: and now?", "Be kind."),
        ("Be kind.\nCritiqueRequest: more", "Be kind."),
        ("Be kind.<|im_start|>user\nhi", "Be kind."),
        # Ordinary answers stay as they are.
        (
            "Here is how bread rises: yeast eats sugar.",
            "Here is how bread rises: yeast eats sugar.",
        ),
        ("Sure. Yeast eats sugar.", "Sure. Yeast eats sugar."),
        ("I said 'no' twice.", "I said 'no' twice."),
    ],
)
def test_clean_generation(raw, clean):
    assert clean_generation(raw) == clean


@pytest.mark.parametrize(
    "critique",
    [
        "The response is already harmless.",
        "No changes are needed; it declines politely.",
        "The response does not need any revisions.",
        "There is no harmful content in it.",
        "Nothing needs to be changed.",
    ],
)
def test_no_change_detected(critique):
    assert says_no_change(critique)


@pytest.mark.parametrize(
    "critique",
    [
        "The response explains how to poison a dog, which is harmful and illegal.",
        "It should refuse and suggest talking to the neighbour instead.",
        "The answer needs changes: it insults the user.",
    ],
)
def test_real_critiques_are_not_no_change(critique):
    assert not says_no_change(critique)
