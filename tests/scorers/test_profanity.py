"""`cai.scorers.profanity`: alt-profanity-check, a second signal."""

from __future__ import annotations


def test_profanity_check_is_a_second_signal():
    from cai.scorers import profanity

    assert profanity.available()  # installed by `make install` (the profanity extra)
    texts = ["You are a worthless idiot.", "Thank you for your help."]
    rude, kind = profanity.ProfanityScorer()(["hi"] * 2, texts)
    assert rude > 0.9 > 0.1 > kind
