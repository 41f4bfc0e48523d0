"""`cai.judge.JudgeLabeller`: the judge as online DPO's labeller of sample i vs i + B."""

from __future__ import annotations

import pytest

from cai.constitution import load_constitution
from cai.judge import JudgeLabeller
from cai.judge.pairwise import Judge, PairResult
from tests.fakes import ScriptedBackend, prefers_text


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def answer(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


class RecordingJudge:
    """A scripted judge: P(a better) from a table by the pair's texts; records every item."""

    def __init__(self, p: dict[tuple[str, str], float]) -> None:
        self.p, self.seen = p, []

    def judge(self, items):
        self.seen.append(items)
        return [
            PairResult(
                it.id,
                p_a=self.p[(it.a, it.b)],
                p_a_raw=0.0,
                orders=[],
                principles=[],
                flipped=False,
            )
            for it in items
        ]


PROMPTS = [ask("dog barks"), ask("lost key")]


def test_returns_p_for_the_first_samples_and_one_minus_p_for_the_second():
    judge = RecordingJudge({("a0", "b0"): 0.8, ("a1", "b1"): 0.3})
    label = JudgeLabeller(judge)
    out = label(PROMPTS * 2, [answer("a0"), answer("a1"), answer("b0"), answer("b1")])
    assert out == pytest.approx([0.8, 0.3, 0.2, 0.7])
    assert label.labels == [pytest.approx([0.8, 0.3])]
    # The judge saw sample i against sample i + B, under prompt i, i first.
    (items,) = judge.seen
    assert [(it.conversation, it.a, it.b) for it in items] == [
        (PROMPTS[0], "a0", "b0"),
        (PROMPTS[1], "a1", "b1"),
    ]


def test_each_step_has_its_own_item_ids_and_labels():
    judge = RecordingJudge({("x", "y"): 0.6, ("y", "x"): 0.1})
    label = JudgeLabeller(judge)
    label(PROMPTS[:1] * 2, ["x", "y"])  # plain strings work as well as message lists
    label(PROMPTS[:1] * 2, ["y", "x"])
    assert label.labels == [pytest.approx([0.6]), pytest.approx([0.1])]
    first, second = (items[0].id for items in judge.seen)
    assert first != second


def test_with_a_real_judge_the_better_sample_gets_the_higher_label():
    judge = Judge(ScriptedBackend(prefer=prefers_text("kindly")), load_constitution("harmless"))
    kind, cruel = answer("Talk to them kindly."), answer("Poison the dog.")
    out = JudgeLabeller(judge)(PROMPTS * 2, [kind, cruel, cruel, kind])
    assert out[0] > 0.5 > out[1]
    assert out[2] == pytest.approx(1 - out[0]) and out[3] == pytest.approx(1 - out[1])


@pytest.mark.parametrize(
    "prompts, completions",
    [(PROMPTS + PROMPTS[:1], ["a", "b", "c"]), (PROMPTS * 2, ["a", "b", "c"])],
    ids=["odd", "fewer-completions"],
)
def test_rows_that_are_not_two_per_prompt_raise(prompts, completions):
    judge = RecordingJudge({})
    with pytest.raises(ValueError, match="two completions per prompt"):
        JudgeLabeller(judge)(prompts, completions)
    assert judge.seen == []
