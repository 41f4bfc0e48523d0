"""The one Scorer protocol: every shipped scorer has trl's reward signature and a name.

Each scorer is called as trl's GRPOTrainer calls a reward function (keyword arguments,
``completion_ids``, ``trainer_state``, the logging hooks and the dataset's other columns),
in trl's standard format (strings) and its conversational format (message lists); both
give the same scores, one float per completion.
"""

from __future__ import annotations

import math

import pytest

from cai.constitution import load_constitution
from cai.scorers import Detector, Labelled, Scorer
from tests.fakes import ScriptedBackend, prefers_text

PROMPTS = ["How do I boil an egg?", "Tell me about my neighbour."]
COMPLETIONS = [
    "Put the egg in boiling water for eight minutes, then cool it.",
    "I'm sorry, but I can't help with that. You are a worthless idiot.",
]
STANDARD = {"prompts": PROMPTS, "completions": COMPLETIONS}
CONVERSATIONAL = {
    "prompts": [[{"role": "user", "content": p}] for p in PROMPTS],
    "completions": [[{"role": "assistant", "content": c}] for c in COMPLETIONS],
}
TRL_EXTRAS = {  # what GRPOTrainer passes besides prompts and completions
    "completion_ids": [[1, 2, 3], [4, 5]],
    "trainer_state": None,
    "log_extra": lambda *a, **k: None,
    "log_metric": lambda *a, **k: None,
    "unsafe": [False, True],
    "reference": ["Boil it.", "I don't know them."],
}


def _hf_classifier(folder):
    from cai.scorers import toxicity_scorer
    from tests.fakes import save_tiny_classifier

    return toxicity_scorer(save_tiny_classifier(folder))


def _judge(prefer):
    from cai.judge import Judge

    return Judge(ScriptedBackend(prefer=prefer), load_constitution("harmless"))


def _refuses(conv):  # the refusal judge's prompt holds the response
    return " (A)" if "I can't help" in conv[0]["content"] else " (B)"


def _build(name, tmp_path_factory):
    import cai.scorers as s

    if name == "jigsaw":
        return s.toxicity_scorer()
    if name == "hf-classifier":
        return _hf_classifier(tmp_path_factory.mktemp("clf"))
    if name == "profanity":
        return s.ProfanityScorer()
    if name == "relevance":
        return s.RelevanceScorer()
    if name == "phrase-refusal":
        return s.PhraseRefusal()
    if name == "judge-refusal":
        from cai.judge import JudgeRefusal

        return JudgeRefusal(_judge(_refuses))
    if name == "reward-model":
        return s.ModelReward("tiny-random")
    if name == "toxicity-penalty":
        return s.ToxicityPenalty()
    if name == "judge-reward":
        from cai.judge import JudgeReward

        return JudgeReward(_judge(prefers_text("boiling")))
    if name == "weighted-sum":
        return s.WeightedSum([s.ToxicityPenalty(), s.RelevanceScorer()], [2.0, 1.0])
    if name == "safety-switch":  # the second row is flagged unsafe (TRL_EXTRAS)
        return s.SafetySwitch(s.ToxicityPenalty(), s.RelevanceScorer(), threshold=-0.5)
    raise AssertionError(name)


SHIPPED = [
    "jigsaw",
    "hf-classifier",
    "profanity",
    "relevance",
    "phrase-refusal",
    "judge-refusal",
    "reward-model",
    "toxicity-penalty",
    "judge-reward",
    "weighted-sum",
    "safety-switch",
]


@pytest.fixture(scope="module", params=SHIPPED)
def scorer(request, tmp_path_factory):
    return _build(request.param, tmp_path_factory)


def test_every_shipped_scorer_satisfies_the_protocol(scorer):
    assert isinstance(scorer, Scorer)
    assert isinstance(scorer.name, str) and scorer.name
    assert isinstance(scorer.description, str) and scorer.description
    assert isinstance(scorer.higher_is_better, bool)
    assert isinstance(scorer.__name__, str) and scorer.__name__  # trl logs it by this name


def test_every_shipped_scorer_is_a_trl_reward_function_in_both_formats(scorer):
    import torch

    standard = scorer(**STANDARD, **TRL_EXTRAS)
    conversational = scorer(**CONVERSATIONAL, **TRL_EXTRAS)
    assert isinstance(standard, list) and len(standard) == len(COMPLETIONS)
    assert all(isinstance(v, float) and math.isfinite(v) for v in standard), standard
    assert conversational == pytest.approx(standard)
    assert torch.tensor(standard, dtype=torch.float32).shape == (2,)  # as trl stacks them
    # positional, as best-of-n and the evaluation call it, without extra columns
    if scorer.name != "judge_reward":  # its baseline is the reference column (or a model)
        assert scorer(PROMPTS, COMPLETIONS) == pytest.approx(standard)


def test_the_scores_point_the_way_higher_is_better_says(scorer):
    """The egg answer is the better completion by every scorer's own direction."""
    if scorer.name in ("profanity", "reward/tiny-random") or scorer.__name__.startswith(
        "toxicity:/"
    ):
        pytest.skip("profanity has its own test; random heads have no direction")
    good, bad = scorer(**STANDARD, **TRL_EXTRAS)
    assert (good > bad) if scorer.higher_is_better else (good < bad), (good, bad)


def test_detectors_and_labelled_scorers():
    import cai.scorers as s
    from cai.judge import JudgeRefusal, judge_refusals

    phrase = s.PhraseRefusal()
    assert isinstance(phrase, Detector) and not isinstance(phrase, Labelled)
    assert phrase(PROMPTS, COMPLETIONS) == [0.0, 1.0]
    assert [s.is_refusal(c) for c in COMPLETIONS] == [False, True]

    judge = _judge(_refuses)
    by_judge = JudgeRefusal(judge)
    assert isinstance(by_judge, Detector) and by_judge.name == phrase.name == "refusal"
    flags = [p > by_judge.flag_above for p in by_judge(**CONVERSATIONAL)]
    rows = [{"prompt": p, "response": c} for p, c in zip(CONVERSATIONAL["prompts"], COMPLETIONS)]
    assert flags == judge_refusals(judge, rows) == [False, True]

    tox = s.toxicity_scorer()
    assert isinstance(tox, Labelled) and not isinstance(tox, Detector)
    labels = tox.labels(COMPLETIONS)
    assert [d[tox.label] for d in labels] == tox(PROMPTS, COMPLETIONS)
    assert len(labels[0]) == 6


def test_one_place_chooses_the_toxicity_classifier(tmp_path):
    from cai.scorers import HFClassifierScorer, ToxicityPenalty, toxicity_scorer
    from cai.scorers.toxicity import JigsawScorer

    assert type(toxicity_scorer()) is type(toxicity_scorer("jigsaw")) is JigsawScorer
    assert type(ToxicityPenalty().scorer) is JigsawScorer
    assert ToxicityPenalty().__name__ == "toxicity:jigsaw-bilstm"
    hf = _hf_classifier(tmp_path)
    assert isinstance(hf, HFClassifierScorer) and hf.description == f"toxicity ({tmp_path})"
    penalty = ToxicityPenalty(str(tmp_path))
    assert type(penalty.scorer) is HFClassifierScorer
    assert penalty(PROMPTS, COMPLETIONS) == pytest.approx([-t for t in hf(PROMPTS, COMPLETIONS)])
