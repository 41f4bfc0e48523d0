"""`cai evaluate`'s scoring through the one Scorer protocol (`evaluation_scorers`, `record`)."""

from __future__ import annotations

import pytest

from cai.config import EvalConfig
from cai.scorers import Detector, Labelled, Scorer


def _rows(*texts):
    return [
        {
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "response": t,
            "scores": {},
            "unscored": {},
        }  # fmt: skip
        for i, t in enumerate(texts)
    ]


class Plain:
    name, description, higher_is_better = "length", "length (chars)", True

    def __call__(self, prompts, completions, **columns):
        self.prompts = prompts
        return [float(len(c)) for c in completions]


class Flags(Plain):
    name, description, flag_above = "shouting", "shouting (caps)", 0.5

    def __call__(self, prompts, completions, **columns):
        return [0.9 if c.isupper() else 0.1 for c in completions]


class Classes(Plain):
    name, description, label = "mood", "mood (two labels)", "sad"

    def __call__(self, prompts, completions, **columns):
        raise AssertionError("a labelled scorer is recorded through labels()")

    def labels(self, texts):
        return [{"sad": float("sad" in t), "glad": float("glad" in t)} for t in texts]


def test_record_keeps_a_score_a_flag_or_every_label():
    from cai.evaluate.run import record

    plain, flags, classes = Plain(), Flags(), Classes()
    assert isinstance(plain, Scorer) and not isinstance(plain, (Detector, Labelled))
    assert isinstance(flags, Detector) and isinstance(classes, Labelled)

    rows = _rows("sad day", "", "GLAD")
    assert [record(rows, s) for s in (plain, flags, classes)] == [
        "length (chars)",
        "shouting (caps)",
        "mood (two labels)",
    ]
    assert plain.prompts == [rows[0]["prompt"], rows[2]["prompt"]]  # the messages, as trl's
    assert rows[0]["scores"] == {
        "length": 7.0,
        "shouting": False,
        "mood": {"sad": 1.0, "glad": 0.0},
        "sad": 1.0,
    }
    assert rows[2]["scores"]["shouting"] is True and rows[2]["scores"]["sad"] == 0.0
    assert rows[1]["scores"] == {}
    assert rows[1]["unscored"] == dict.fromkeys(("length", "shouting", "mood"), "empty response")


def test_the_evaluation_takes_either_refusal_detector_through_one_interface():
    from cai.evaluate.run import evaluation_scorers
    from cai.judge import Judge, JudgeRefusal
    from cai.scorers import PhraseRefusal
    from cai.scorers.toxicity import JigsawScorer
    from tests.fakes import ScriptedBackend

    cfg = EvalConfig(models=["tiny-random"], relevance=False, profanity=False)
    tox, refusal = evaluation_scorers(cfg)
    assert isinstance(tox, JigsawScorer) and isinstance(refusal, PhraseRefusal)

    from cai.constitution import load_constitution

    judge = Judge(ScriptedBackend(prefer=" (A)"), load_constitution("harmless"))
    asked = cfg.model_copy(update={"refusal_judge": True})
    assert isinstance(evaluation_scorers(asked, judge)[-1], JudgeRefusal)
    assert isinstance(evaluation_scorers(asked, None)[-1], PhraseRefusal)  # no judge: phrases
    assert isinstance(evaluation_scorers(cfg, judge)[-1], PhraseRefusal)  # judge not asked


@pytest.mark.parametrize("refusal_judge", [False, True])
def test_score_rows_flags_refusals_either_way(refusal_judge):
    from cai.constitution import load_constitution
    from cai.evaluate.run import score_rows
    from cai.judge import Judge
    from tests.fakes import ScriptedBackend

    def refuses(conv):
        return " (A)" if "can't help" in conv[0]["content"] else " (B)"

    judge = Judge(ScriptedBackend(prefer=refuses), load_constitution("harmless"))
    cfg = EvalConfig(
        models=["tiny-random"], relevance=False, profanity=False, refusal_judge=refusal_judge
    )
    rows = _rows("Boil it for eight minutes.", "I'm sorry, I can't help with that.")
    ran = score_rows(cfg, rows, judge)
    refusal = "refusal (judge)" if refusal_judge else "refusal (phrase detector)"
    assert ran == ["toxicity (jigsaw-bilstm)", refusal]
    assert [r["scores"]["refusal"] for r in rows] == [False, True]
    assert [list(r["scores"]) for r in rows] == [["toxicity", "toxic", "refusal", "words"]] * 2
