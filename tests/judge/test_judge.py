"""The judge: soft labels, both orders, principles, CoT clamp, fallback parsing, k-wise."""

from __future__ import annotations

import math

import pytest

from cai.backends.base import Generation
from cai.constitution import load_constitution
from cai.data import PromptRow
from cai.judge.pairwise import OPTIONS, Judge, PairItem, parse_choice, softmax2
from cai.judge.run import preference_row

HARMLESS = load_constitution("harmless")
CONV = [{"role": "user", "content": "My neighbour's dog barks all night. What should I do?"}]
ITEM = PairItem("x", CONV, "Talk to your neighbour kindly.", "Poison the dog.")


class Scripted:
    """A judge backend with fixed behaviour: 'A' always, an oracle, or free text."""

    name, model_name = "scripted", "scripted"

    def __init__(self, behaviour: str, good: str = "kindly") -> None:
        self.behaviour, self.good = behaviour, good
        self.generate_calls = 0

    def _first_is_good(self, conv) -> bool:
        text = conv[0]["content"]
        a = text[text.index("(A)") : text.index("(B)")]
        b = text[text.index("(B)") :].split("\n\n")[0]

        def value(option: str) -> int:
            return (self.good in option) - ("Poison" in option)

        return value(a) >= value(b)

    def score_options(self, convs, options):
        out = []
        for conv in convs:
            a_wins = True if self.behaviour == "A" else self._first_is_good(conv)
            out.append([0.0, -3.0] if a_wins else [-3.0, 0.0])
        return out

    def generate(self, convs, params):
        self.generate_calls += 1
        return [[Generation(self.behaviour, 3, "stop")] for _ in convs]


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
    Judge(tiny_backend, HARMLESS, principles=2).judge([ITEM, ITEM])


def test_always_a_judge_is_a_coin_with_every_verdict_flipped():
    res = Judge(Scripted("A"), HARMLESS).judge([ITEM])[0]
    assert res.p_a == pytest.approx(0.5) and res.flipped
    oracle = Judge(Scripted("oracle"), HARMLESS).judge([ITEM])[0]
    assert oracle.p_a > 0.95 and not oracle.flipped


def test_principle_ensemble_keeps_each_principle():
    judge = Judge(Scripted("oracle"), HARMLESS, principles="all")
    res = judge.judge([ITEM])[0]
    assert len(res.principles) == len(HARMLESS.principles) and len(res.orders) == 2 * len(
        HARMLESS.principles
    )
    assert Judge(Scripted("oracle"), HARMLESS, seed=1).questions("x") == Judge(
        Scripted("oracle"), HARMLESS, seed=1
    ).questions("x")


def test_cot_clamps_the_soft_label_and_keeps_the_raw_value():
    backend = Scripted("oracle")
    backend.generate = lambda convs, params: (
        [[Generation("Option A is kinder.", 5, "stop")]] * len(convs)
    )
    res = Judge(backend, HARMLESS, mode="cot").judge([ITEM])[0]
    assert res.p_a_raw > 0.95 and res.p_a == pytest.approx(0.6)
    res = Judge(backend, HARMLESS, mode="cot", cot_clamp=None).judge([ITEM])[0]
    assert res.p_a > 0.95
    assert res.orders[0]["raw"] == "Option A is kinder."


def test_generate_fallback_parses_or_abstains_without_crashing():
    judge = Judge(Scripted("(A)"), HARMLESS, mode="generate")
    res = judge.judge([ITEM])[0]
    assert res.p_a == pytest.approx(0.5) and res.flipped and res.fallbacks == 2
    judge = Judge(Scripted("hmm, hard to say"), HARMLESS, mode="generate")
    res = judge.judge([ITEM])[0]
    assert res.abstained == 2 and res.p_a == 0.5
    assert res.orders[0]["raw"] == "hmm, hard to say" and judge.stats["abstained"] == 2


def test_kwise_ranking_puts_the_best_first():
    cands = ["Be kind and talk first.", "Poison it.", "Call the noise line, kindly."]
    backend = Scripted("oracle", good="kind")
    judge = Judge(backend, HARMLESS)
    from cai.judge.ranking import all_pairs

    pairs = all_pairs(3)
    items = [PairItem(f"r:{i}-{j}", CONV, cands[i], cands[j]) for i, j in pairs]
    judged = [(i, j, r) for (i, j), r in zip(pairs, judge.judge(items))]
    row = preference_row(PromptRow("r", CONV, 0, {}), cands, judged, {})
    assert row["ranking"][-1] == 1 and row["rejected"][0]["content"] == "Poison it."
    assert row["score_chosen"] > row["score_rejected"] and row["margin"] > 0
    assert len(row["comparisons"]) == 3


def test_pairwise_row_columns():
    swapped = PairItem("x", CONV, ITEM.b, ITEM.a)
    res = Judge(Scripted("oracle"), HARMLESS).judge([swapped])[0]
    row = preference_row(PromptRow("x", CONV, 0, {}), [ITEM.b, ITEM.a], [(0, 1, res)], {})
    # candidate 1 (ITEM.a, the kind one) wins although it was given second
    assert row["chosen"][0]["content"] == ITEM.a and row["p_chosen"] > 0.95
    assert all(p > 0.95 for p in row["p_chosen_by_order"])
    assert row["margin"] == pytest.approx(math.log(row["p_chosen"] / (1 - row["p_chosen"])))
    assert softmax2(0.0, 0.0) == 0.5


def test_judge_reward_has_trls_signature_and_caches_the_baseline(tiny_backend):
    from cai.judge import JudgeReward

    reward = JudgeReward(Judge(Scripted("oracle"), HARMLESS), reference=tiny_backend)
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
