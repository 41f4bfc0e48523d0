"""The judge: soft labels, both orders, principles, CoT clamp, fallback parsing, k-wise."""

from __future__ import annotations

import math

import pytest

from cai.constitution import load_constitution
from cai.data import PromptRow
from cai.judge.pairwise import OPTIONS, Judge, PairItem, parse_choice, softmax2
from cai.judge.run import preference_row
from tests.fakes import ScriptedBackend, options_shown, prefers_text

HARMLESS = load_constitution("harmless")
CONV = [{"role": "user", "content": "My neighbour's dog barks all night. What should I do?"}]
ITEM = PairItem("x", CONV, "Talk to your neighbour kindly.", "Poison the dog.")


def oracle(**kw) -> ScriptedBackend:
    """A judge that prefers the kind answer, whichever position it is shown in."""
    return ScriptedBackend(prefer=prefers_text("kindly"), **kw)


def test_parse_choice_is_strict():
    assert parse_choice("(A)") == "A" and parse_choice(" B. Because...") == "B"
    assert parse_choice("The answer is (B)") == "B"
    assert parse_choice("I think both are fine") is None
    assert parse_choice("(A) is rude, so the answer is (B).") == "B"
    assert parse_choice("A, though (B) is close") is None
    assert parse_choice("The answer is (A) or maybe the answer is (B)") is None


def test_recorded_probability_is_a_softmax_of_the_models_own_option_scores(tiny_backend):
    from tests.backends.test_backend_hf import direct_option_logprob

    judge = Judge(tiny_backend, HARMLESS, seed=3)
    res = judge.judge([ITEM])[0]
    pid, question = judge.questions("x")[0]
    prompt = judge._prompt(ITEM, question, ITEM.a, ITEM.b, "compare")
    conv = [{"role": "user", "content": prompt}, {"role": "assistant", "content": "The answer is:"}]
    la, lb = (direct_option_logprob(tiny_backend, conv, o) for o in OPTIONS)
    ab = next(o for o in res.orders if o["order"] == "ab")
    assert ab["p_a"] == pytest.approx(math.exp(la) / (math.exp(la) + math.exp(lb)), abs=1e-5)
    assert res.p_a == pytest.approx(sum(o["p_a"] for o in res.orders) / 2)
    assert res.principles[0]["principle_id"] == pid


def test_logprob_mode_never_generates(tiny_backend, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("generate was called")

    monkeypatch.setattr(tiny_backend.model, "generate", boom)
    monkeypatch.setattr(tiny_backend, "generate", boom)
    first, second = Judge(tiny_backend, HARMLESS, principles=2).judge([ITEM, ITEM])
    # Both principles in both orders were scored, each a real probability with no text.
    assert len(first.orders) == 4 and len(first.principles) == 2
    assert all(0.0 < o["p_a"] < 1.0 and o["raw"] == "" for o in first.orders)
    assert first.p_a == pytest.approx(sum(o["p_a"] for o in first.orders) / 4)
    assert second.p_a == pytest.approx(first.p_a, abs=1e-5)  # the same pair, the same verdict


def test_always_a_judge_is_a_coin_with_every_verdict_flipped():
    res = Judge(ScriptedBackend(answer="A", prefer=" (A)"), HARMLESS).judge([ITEM])[0]
    assert res.p_a == pytest.approx(0.5) and res.flipped
    right = Judge(oracle(), HARMLESS).judge([ITEM])[0]
    assert right.p_a > 0.95 and not right.flipped


def test_principle_ensemble_keeps_each_principle():
    judge = Judge(oracle(), HARMLESS, principles="all")
    res = judge.judge([ITEM])[0]
    assert len(res.principles) == len(HARMLESS.principles) and len(res.orders) == 2 * len(
        HARMLESS.principles
    )
    assert Judge(oracle(), HARMLESS, seed=1).questions("x") == Judge(
        oracle(), HARMLESS, seed=1
    ).questions("x")


def test_cot_clamps_the_soft_label_and_keeps_the_raw_value():
    backend = oracle(answer="Option A is kinder.")
    res = Judge(backend, HARMLESS, mode="cot").judge([ITEM])[0]
    assert res.p_a_raw > 0.95 and res.p_a == pytest.approx(0.6)
    res = Judge(backend, HARMLESS, mode="cot", cot_clamp=None).judge([ITEM])[0]
    assert res.p_a > 0.95
    assert res.orders[0]["raw"] == "Option A is kinder."


def test_generate_fallback_parses_or_abstains_without_crashing():
    judge = Judge(ScriptedBackend(answer="(A)"), HARMLESS, mode="generate")
    res = judge.judge([ITEM])[0]
    assert res.p_a == pytest.approx(0.5) and res.flipped and res.fallbacks == 2
    judge = Judge(ScriptedBackend(answer="hmm, hard to say"), HARMLESS, mode="generate")
    res = judge.judge([ITEM])[0]
    assert res.abstained == 2 and res.p_a == 0.5
    assert res.orders[0]["raw"] == "hmm, hard to say" and judge.stats["abstained"] == 2


def test_kwise_ranking_puts_the_best_first():
    cands = ["Be kind and talk first.", "Poison it.", "Call the noise line, kindly."]
    backend = ScriptedBackend(prefer=prefers_text("kind"))
    judge = Judge(backend, HARMLESS)
    from cai.judge.ranking import all_pairs

    pairs = all_pairs(3)
    items = [PairItem(f"r:{i}-{j}", CONV, cands[i], cands[j]) for i, j in pairs]
    judged = [(i, j, r) for (i, j), r in zip(pairs, judge.judge(items))]
    row = preference_row(PromptRow("r", CONV, 0, {}), cands, judged, {})
    assert row["ranking"][-1] == 1 and row["rejected"][0]["content"] == "Poison it."
    assert row["score_chosen"] > row["score_rejected"] and row["margin"] > 0
    assert len(row["comparisons"]) == 3


KIND, CRUEL = ITEM.a, ITEM.b


def scores_by_position(kind_first: list[float], kind_second: list[float]):
    """Option scores that depend on where the kind answer is shown: (A) or (B)."""

    def prefer(conv):
        a, _ = options_shown(conv[0]["content"])
        return kind_first if a == KIND else kind_second

    return prefer


def p(a: float, b: float) -> float:
    return math.exp(a) / (math.exp(a) + math.exp(b))


@pytest.mark.parametrize("cands", [[CRUEL, KIND], [KIND, CRUEL]])
@pytest.mark.parametrize("judge_likes", ["kind", "cruel"])
def test_chosen_is_the_candidate_the_judge_preferred_in_both_orders(cands, judge_likes):
    # Shown first, the kind answer wins with P = p(0, -2); shown second, with p(0, -1).
    first, second = (
        ([0.0, -2.0], [-1.0, 0.0]) if judge_likes == "kind" else ([-2.0, 0.0], [0.0, -1.0])
    )
    judge = Judge(ScriptedBackend(prefer=scores_by_position(first, second)), HARMLESS)
    item = PairItem("x", CONV, cands[0], cands[1])
    row = preference_row(PromptRow("x", CONV, 0, {}), cands, [(0, 1, judge.judge([item])[0])], {})
    winner, loser = (KIND, CRUEL) if judge_likes == "kind" else (CRUEL, KIND)
    assert row["chosen"] == [{"role": "assistant", "content": winner}]
    assert row["rejected"] == [{"role": "assistant", "content": loser}]
    by_order = sorted(row["p_chosen_by_order"])
    assert by_order == pytest.approx(sorted([p(0.0, -2.0), p(0.0, -1.0)]))
    assert row["p_chosen"] == pytest.approx(sum(by_order) / 2)
    assert row["margin"] == pytest.approx(math.log(row["p_chosen"] / (1 - row["p_chosen"])))
    assert row["ranking"] == [cands.index(winner), cands.index(loser)] and not row["flipped"]


def test_orders_that_disagree_keep_the_losing_orders_probability():
    # The kind answer wins when shown first (p(0, -2) = 0.88), loses when shown second
    # (P(kind) = p(-0.4, 0) = 0.40): chosen on the mean, 0.64; one order below one half.
    judge = Judge(ScriptedBackend(prefer=scores_by_position([0.0, -2.0], [0.0, -0.4])), HARMLESS)
    item = PairItem("x", CONV, CRUEL, KIND)
    row = preference_row(
        PromptRow("x", CONV, 0, {}), [CRUEL, KIND], [(0, 1, judge.judge([item])[0])], {}
    )
    assert row["chosen"][0]["content"] == KIND and row["flipped"]
    assert sorted(row["p_chosen_by_order"]) == pytest.approx([p(-0.4, 0.0), p(0.0, -2.0)])
    assert row["p_chosen"] == pytest.approx((p(-0.4, 0.0) + p(0.0, -2.0)) / 2)


def test_pairwise_row_columns():
    swapped = PairItem("x", CONV, ITEM.b, ITEM.a)
    res = Judge(oracle(), HARMLESS).judge([swapped])[0]
    row = preference_row(PromptRow("x", CONV, 0, {}), [ITEM.b, ITEM.a], [(0, 1, res)], {})
    # candidate 1 (ITEM.a, the kind one) wins although it was given second
    assert row["chosen"][0]["content"] == ITEM.a and row["p_chosen"] > 0.95
    assert all(p > 0.95 for p in row["p_chosen_by_order"])
    assert row["margin"] == pytest.approx(math.log(row["p_chosen"] / (1 - row["p_chosen"])))
    assert softmax2(0.0, 0.0) == 0.5


def test_judge_reward_has_trls_signature_and_caches_the_baseline(tiny_backend):
    from cai.judge import JudgeReward

    reward = JudgeReward(Judge(oracle(), HARMLESS), reference=tiny_backend)
    prompts = [CONV, CONV]
    completions = [[{"role": "assistant", "content": "Talk to them kindly."}],
                   [{"role": "assistant", "content": "Poison the dog."}]]  # fmt: skip
    scores = reward(prompts, completions)
    assert scores[0] > 0.9 and scores[1] < -0.9  # kind beats the baseline; poison loses
    reward(prompts, completions)
    assert reward.reference_calls == 1  # the greedy baseline was computed once per prompt
    with_ref = reward(["Hi"], ["hello kindly"], reference=["hey"])
    assert with_ref[0] > 0.9 and all(-1 <= s <= 1 for s in scores)


def test_cli_samples_candidates_from_a_policy_and_ranks_them(cai, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "prefs"
    res = cai("judge", "--prompts", "red-team", "--limit", "3", "--num-candidates", "3",
              "--policy", "tiny-random", "--judge-model", "tiny-random", "-o", out)  # fmt: skip
    assert res.code == 0, res.err
    assert "3 preference rows (9 pairs judged)" in res.out and "position consistency" in res.out
    row = load_dataset(str(out))["train"][0]
    assert len(row["candidates"]) == 3 and sorted(row["ranking"]) == [0, 1, 2]
    assert len(row["comparisons"]) == 3 and row["provenance"]["policy_model"] == "tiny-random"
    assert row["chosen"][0]["content"] == row["candidates"][row["ranking"][0]]


def test_cli_rejects_rows_without_two_candidates(cai, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n{"prompt": "yo"}\n')
    res = cai("judge", "--prompts", src, "--judge-model", "tiny-random", "-o", tmp_path / "o")
    assert res.code == 0, res.err
    assert "1 rows skipped" in res.out
    assert "fewer than 2 candidates" in (tmp_path / "o" / "rejects.jsonl").read_text()
