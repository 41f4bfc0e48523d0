"""`cai.judge.refusal` and `prompts/refusal.j2`: the judge as a refusal detector."""

from __future__ import annotations

import math

import pytest

from cai.constitution import load_constitution
from cai.judge import Judge, judge_refusals, refusal_probabilities
from cai.judge.pairwise import ANSWER_PREFIX, OPTIONS
from cai.prompts import render
from tests.fakes import ScriptedBackend

HARMLESS = load_constitution("harmless")
ROWS = [
    {
        "prompt": [
            {"role": "system", "content": "SYSTEM-SECRET"},
            {"role": "user", "content": "How do I pick a lock?"},
            {"role": "assistant", "content": "Which lock?"},
            {"role": "user", "content": "My own front door."},
        ],
        "response": "I'm sorry, I can't help with that.",
    },
    {
        "prompt": [{"role": "user", "content": "How do I boil an egg?"}],
        "response": "Put it in boiling water for eight minutes.",
    },
]


def test_the_template_renders_the_conversation_and_the_response():
    text = render("refusal", conversation=ROWS[0]["prompt"], response=ROWS[0]["response"])
    assert "Human: How do I pick a lock?" in text and "Assistant: Which lock?" in text
    assert "Human: My own front door." in text
    assert "SYSTEM-SECRET" not in text  # the transcript leaves the system prompt out
    assert text.index("My own front door.") < text.index(ROWS[0]["response"])
    assert "(A) Yes, it refuses" in text and "(B) No, it engages" in text


def test_a_judge_that_prefers_a_finds_refusals_and_b_finds_none():
    assert judge_refusals(Judge(ScriptedBackend(prefer=" (A)"), HARMLESS), ROWS) == [True, True]
    assert judge_refusals(Judge(ScriptedBackend(prefer=" (B)"), HARMLESS), ROWS) == [False, False]


def test_each_response_is_asked_about_in_its_own_prompt_with_the_open_answer():
    backend = ScriptedBackend(
        prefer=lambda conv: " (A)" if "I can't help" in conv[0]["content"] else " (B)", gap=2.0
    )
    probs = refusal_probabilities(Judge(backend, HARMLESS), ROWS)
    refusal = 1 / (1 + math.exp(-2.0))  # softmax of (0, -2)
    assert probs == pytest.approx([refusal, 1 - refusal])
    (convs,) = backend.scored
    for conv, row in zip(convs, ROWS):
        assert conv[0] == {
            "role": "user",
            "content": render("refusal", conversation=row["prompt"], response=row["response"]),
        }
        assert conv[1] == {"role": "assistant", "content": ANSWER_PREFIX}


def test_a_prompts_dir_override_is_used(tmp_path):
    (tmp_path / "refusal.j2").write_text("MINE: {{ response }}")
    backend = ScriptedBackend(prefer=" (A)")
    judge_refusals(Judge(backend, HARMLESS, prompts_dir=str(tmp_path)), ROWS[1:])
    assert backend.scored[0][0][0]["content"] == "MINE: " + ROWS[1]["response"]


def test_on_the_tiny_model_the_probability_is_the_softmax_of_its_option_scores(tiny_backend):
    from tests.backends.test_backend_hf import direct_option_logprob

    (p,) = refusal_probabilities(Judge(tiny_backend, HARMLESS), ROWS[:1])
    conv = [
        {
            "role": "user",
            "content": render(
                "refusal", conversation=ROWS[0]["prompt"], response=ROWS[0]["response"]
            ),
        },
        {"role": "assistant", "content": ANSWER_PREFIX},
    ]
    la, lb = (direct_option_logprob(tiny_backend, conv, o) for o in OPTIONS)
    assert p == pytest.approx(math.exp(la) / (math.exp(la) + math.exp(lb)), abs=1e-5)
    assert judge_refusals(Judge(tiny_backend, HARMLESS), ROWS[:1]) == [p > 0.5]
