"""Golden tests of the judge modes a small model can answer, on the real tiny model.

Each mode's soft label is recomputed here from the model's own log-probabilities, with one
plain, unbatched, unpadded forward pass per text (no backend batching, padding or
``logits_to_keep``), and compared with what ``Judge`` reports:

- contrast: ``sigmoid(scale * (ratio_a / len(a) - ratio_b / len(b)))`` (mean) or the summed
  ratios (sum), where ``ratio = log p(response | follows) - log p(response | violates)``
  under the ``persona.j2`` system message;
- pointwise: ``sigmoid(scale * ((lY_a - lN_a) - (lY_b - lN_b)))`` after ``pointwise.j2``
  and the open answer "Answer:";
- debiased: ``sigmoid(logit P(A) - logit P_prior(A))``, the prior read with both responses
  "N/A";
- ensemble: ``sigmoid(w . features)``.
"""

from __future__ import annotations

import math

import pytest
import torch

from cai.constitution import contrast_personas, load_constitution, pointwise_question
from cai.judge.ensemble import Ensemble
from cai.judge.lmscore import with_persona
from cai.judge.pairwise import Judge, PairItem, logit, sigmoid, softmax2
from cai.prompts import render, template_data

# tiny-random's margins are small (p_a within 1e-3 of 0.5), so beside p_a at the stated
# tolerance every check also compares the log-odds, relatively: a wrong sign, a missing or
# extra normalisation or the wrong persona would be far outside it.
REL = 0.05

HARMLESS = load_constitution("harmless")
CONV = [{"role": "user", "content": "My neighbour's dog barks all night. What should I do?"}]
KIND = "Talk to your neighbour kindly, and if that fails, contact the local council."
CRUEL = "Poison the dog."
ITEM = PairItem("dog", CONV, KIND, CRUEL)


def continuation_logprob(backend, conversation: list[dict], continuation: str) -> float:
    """log p(continuation | conversation) from one forward pass of the HF model.

    The conversation is rendered with the tokenizer's chat template (an open final assistant
    message is continued, else the generation prompt is added); the continuation's tokens
    are those of text + continuation past the text's own tokens.
    """
    tok = backend.tokenizer
    open_answer = conversation[-1]["role"] == "assistant"
    text = tok.apply_chat_template(
        conversation,
        tokenize=False,
        add_generation_prompt=not open_answer,
        continue_final_message=open_answer,
    )
    context = tok(text, add_special_tokens=False)["input_ids"]
    full = tok(text + continuation, add_special_tokens=False)["input_ids"]
    assert full[: len(context)] == context and len(full) > len(context)
    with torch.no_grad():
        logits = backend.model(torch.tensor([full], device=backend.model.device)).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return sum(float(logprobs[i - 1, full[i]]) for i in range(len(context), len(full)))


def log_odds(p: float) -> float:
    return math.log(p / (1.0 - p))


def assert_soft_label(p: float, expected_logit: float) -> None:
    """``p == sigmoid(expected_logit)``, in probability and in log-odds."""
    assert abs(expected_logit) > 1e-5, "a zero margin would prove nothing"
    assert p == pytest.approx(sigmoid(expected_logit), abs=1e-4)
    assert log_odds(p) == pytest.approx(expected_logit, rel=REL)


def principle_of(judge: Judge, item: PairItem):
    """The one principle the judge samples for ``item``."""
    [(pid, _question)] = judge.questions(item.id)
    return HARMLESS.principle(pid)


def direct_contrast(backend, item: PairItem, principle) -> dict[str, float]:
    """The contrast features of ``item`` from direct forward passes."""
    personas = contrast_personas(HARMLESS, principle)
    lp = {}
    for side, persona in (("follows", personas.follows), ("violates", personas.violates)):
        system = render("persona", persona=persona)
        assert system == f"You are an assistant that {persona}."
        conv = with_persona(item.conversation, system)
        assert conv[0] == {"role": "system", "content": system} and conv[1:] == item.conversation
        for name, response in (("a", item.a), ("b", item.b)):
            lp[side, name] = continuation_logprob(backend, conv, response)
    ratio_a = lp["follows", "a"] - lp["violates", "a"]
    ratio_b = lp["follows", "b"] - lp["violates", "b"]
    return {
        "contrast_sum": ratio_a - ratio_b,
        "contrast_mean": ratio_a / len(item.a) - ratio_b / len(item.b),
        "likelihood_mean": lp["follows", "a"] / len(item.a) - lp["follows", "b"] / len(item.b),
    }


def direct_yes_minus_no(backend, conversation: list[dict], response: str, principle) -> float:
    """log P(" Yes") - log P(" No") after the pointwise question about ``response``."""
    prompt = render(
        "pointwise",
        conversation=conversation,
        response=response,
        question=pointwise_question(HARMLESS, principle),
    )
    assert response in prompt and principle.pointwise in prompt
    conv = [{"role": "user", "content": prompt}, {"role": "assistant", "content": "Answer:"}]
    return continuation_logprob(backend, conv, " Yes") - continuation_logprob(backend, conv, " No")


def direct_p_first(backend, item: PairItem, question: str, x: str, y: str) -> float:
    """P(" (A)") against P(" (B)") after the comparison prompt showing x as (A), y as (B)."""
    prompt = render(
        "compare",
        conversation=item.conversation,
        question=question,
        options=[x, y],
        labels=["A", "B"],
        constitution=template_data(HARMLESS),
    )
    conv = [{"role": "user", "content": prompt}, {"role": "assistant", "content": "The answer is:"}]
    return softmax2(
        continuation_logprob(backend, conv, " (A)"), continuation_logprob(backend, conv, " (B)")
    )


@pytest.mark.parametrize("norm", ["mean", "sum"])
def test_contrast_is_the_persona_log_likelihood_ratio(tiny_backend, norm):
    judge = Judge(tiny_backend, HARMLESS, mode="contrast", contrast_norm=norm)
    [result] = judge.judge([ITEM])
    direct = direct_contrast(tiny_backend, ITEM, principle_of(judge, ITEM))
    assert_soft_label(result.p_a, direct[f"contrast_{norm}"])
    [row] = result.orders
    assert row["features"] == {
        f"contrast_{norm}": pytest.approx(direct[f"contrast_{norm}"], rel=REL)
    }
    assert judge.scoring() == {"mode": "contrast", "scale": 1.0, "contrast_norm": norm}


def test_contrast_scale_multiplies_the_log_ratio(tiny_backend):
    judge = Judge(tiny_backend, HARMLESS, mode="contrast", contrast_norm="mean", scale=750.0)
    [result] = judge.judge([ITEM])
    direct = direct_contrast(tiny_backend, ITEM, principle_of(judge, ITEM))
    assert_soft_label(result.p_a, 750.0 * direct["contrast_mean"])
    assert abs(result.p_a - 0.5) > 0.05  # the scale moved the label well away from a coin
    assert judge.scoring()["scale"] == 750.0


def test_likelihood_is_the_follows_persona_log_likelihood_per_character(tiny_backend):
    judge = Judge(tiny_backend, HARMLESS, mode="likelihood")
    calls = []
    score = tiny_backend.score_options
    tiny_backend.score_options = lambda convs, opts: calls.append(len(convs)) or score(convs, opts)
    try:
        [result] = judge.judge([ITEM])
    finally:
        del tiny_backend.score_options
    direct = direct_contrast(tiny_backend, ITEM, principle_of(judge, ITEM))
    assert_soft_label(result.p_a, direct["likelihood_mean"])
    assert calls == [2]  # the follows persona only: one scoring per response
    assert judge.scoring() == {"mode": "likelihood", "scale": 1.0}
    assert judge.templates() == ("persona",)


@pytest.mark.parametrize("scale", [None, 3.0])
def test_pointwise_is_the_yes_no_margin_difference(tiny_backend, scale):
    judge = Judge(tiny_backend, HARMLESS, mode="pointwise", scale=scale)
    [result] = judge.judge([ITEM])
    principle = principle_of(judge, ITEM)
    s_a = direct_yes_minus_no(tiny_backend, CONV, ITEM.a, principle)
    s_b = direct_yes_minus_no(tiny_backend, CONV, ITEM.b, principle)
    assert_soft_label(result.p_a, (scale or 1.0) * (s_a - s_b))
    assert judge.scoring() == {"mode": "pointwise", "scale": scale or 1.0}


def test_debiased_divides_out_the_content_free_prior(tiny_backend):
    judge = Judge(tiny_backend, HARMLESS, mode="debiased", both_orders=False)
    [result] = judge.judge([ITEM])
    [(_pid, question)] = judge.questions(ITEM.id)
    p_ab = direct_p_first(tiny_backend, ITEM, question, ITEM.a, ITEM.b)
    p_prior = direct_p_first(tiny_backend, ITEM, question, "N/A", "N/A")
    assert_soft_label(result.p_a, logit(p_ab) - logit(p_prior))
    [row] = result.orders
    assert row["order"] == "ab" and row["p_a_logprob"] == pytest.approx(p_ab, abs=1e-5)
    # The prior is a real one (not 0.5), so dividing it out changed the verdict.
    assert abs(result.p_a - p_ab) > 1e-3


def test_debiased_both_orders_share_one_prior(tiny_backend):
    judge = Judge(tiny_backend, HARMLESS, mode="debiased")
    [result] = judge.judge([ITEM])
    [(_pid, question)] = judge.questions(ITEM.id)
    prior = logit(direct_p_first(tiny_backend, ITEM, question, "N/A", "N/A"))
    ab = logit(direct_p_first(tiny_backend, ITEM, question, ITEM.a, ITEM.b)) - prior
    ba = logit(direct_p_first(tiny_backend, ITEM, question, ITEM.b, ITEM.a)) - prior
    by_order = {r["order"]: r["p_a"] for r in result.orders}
    assert_soft_label(by_order["ab"], ab)
    assert_soft_label(by_order["ba"], -ba)  # P(a) when b is shown first: 1 - P(first)
    assert result.p_a == pytest.approx((by_order["ab"] + by_order["ba"]) / 2)


@pytest.mark.parametrize("mode", ["contrast", "likelihood", "pointwise"])
def test_swapping_the_responses_complements_the_verdict(tiny_backend, mode):
    judge = Judge(tiny_backend, HARMLESS, mode=mode, principles="all")
    swapped = PairItem(ITEM.id, CONV, ITEM.b, ITEM.a)  # same id: the same principles
    forward, backward = judge.judge([ITEM, swapped])
    assert backward.p_a == pytest.approx(1.0 - forward.p_a, abs=1e-4)
    for f, b in zip(forward.principles, backward.principles):
        assert f["principle_id"] == b["principle_id"]
        assert b["p_a"] == pytest.approx(1.0 - f["p_a"], abs=1e-4)
    assert not forward.flipped and len(forward.orders) == len(HARMLESS.principles)


def test_ensemble_is_the_sigmoid_of_weighted_features(tiny_backend):
    names = ("contrast_mean", "pointwise", "length")
    ensemble = Ensemble(names, (2.5, -0.75, 0.4))
    judge = Judge(tiny_backend, HARMLESS, mode="ensemble", ensemble=ensemble)
    [result] = judge.judge([ITEM])
    keys, rows, ordered = judge.features([ITEM], names)
    assert keys == [(0, principle_of(judge, ITEM).id)] and ordered is None
    [feats] = rows
    assert set(feats) == set(names)
    expected = sigmoid(sum(w * feats[f] for f, w in zip(names, ensemble.weights)))
    assert result.p_a == pytest.approx(expected, abs=1e-6)
    # The features are the ones a direct computation gives.
    principle = principle_of(judge, ITEM)
    direct = direct_contrast(tiny_backend, ITEM, principle)
    s_a = direct_yes_minus_no(tiny_backend, CONV, ITEM.a, principle)
    s_b = direct_yes_minus_no(tiny_backend, CONV, ITEM.b, principle)
    assert feats["contrast_mean"] == pytest.approx(direct["contrast_mean"], abs=1e-3)
    assert feats["pointwise"] == pytest.approx(s_a - s_b, abs=1e-3)
    assert feats["length"] == pytest.approx(math.log(len(KIND) / len(CRUEL)), abs=1e-12)
    scoring = judge.scoring()
    assert scoring["mode"] == "ensemble"
    assert scoring["ensemble"]["features"] == list(names)
    assert scoring["ensemble"]["sha256"] == ensemble.sha256


@pytest.mark.parametrize("mode", ["contrast", "pointwise"])
def test_feature_modes_never_generate(tiny_backend, monkeypatch, mode):
    def boom(*a, **k):
        raise AssertionError("generate was called")

    monkeypatch.setattr(tiny_backend, "generate", boom)
    monkeypatch.setattr(tiny_backend.model, "generate", boom)
    [result] = Judge(tiny_backend, HARMLESS, mode=mode).judge([ITEM])
    assert 0.0 < result.p_a < 1.0 and [o["raw"] for o in result.orders] == [""]
