"""`cai.scorers.relevance`: an answer is more relevant than a refusal."""

from __future__ import annotations


def test_relevance_prefers_an_answer_to_a_refusal():
    from cai.scorers.relevance import RelevanceScorer

    answer, refusal = RelevanceScorer()(
        ["How do I boil an egg?"] * 2,
        ["Put the egg in boiling water for eight minutes.", "I'm sorry, I can't help."],
    )
    assert answer > 0.4 > refusal
