"""The judge modes for small models (contrast, pointwise, debiased, ensemble, calibrate
``--mode all`` and the pointwise reward), driven by a scripted oracle whose right answer is
known, so every figure the modes report can be checked exactly.

The oracle scores each kind of conversation the judge sends as a model that knows which
response is the good one (it holds ``GOOD``) would:

- **contrast** (a persona system message; the option is the whole response): the good
  response is likely under a "follows" persona and unlikely under a "violates" one, the bad
  response the other way round;
- **pointwise** (the open answer "Answer:" after a yes/no question about one response):
  " Yes" if that response is the good one, else " No";
- **ordered** (the comparison prompt, open answer "The answer is:"): the letter of the good
  response; with both responses "N/A" (the debiased prior), no preference.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cai.backends.base import options_for_each
from cai.config import CalibrateConfig
from cai.constitution import contrast_personas, load_constitution, parse_constitution
from cai.judge import JudgeReward, build_judge, run_calibration, run_calibration_from_config
from cai.judge.calibrate_all import ENSEMBLES, UNFITTED
from cai.judge.ensemble import Ensemble
from cai.judge.lmscore import ANSWER
from cai.judge.pairwise import ANSWER_PREFIX, Judge, PairItem, sigmoid
from cai.prompts import render
from tests.fakes import ScriptedBackend, options_shown

HARMLESS = load_constitution("harmless")
GOOD = "gently"
"""Every gold-correct response holds this word; no prompt or incorrect response does."""
FOLLOWS = {
    render("persona", persona=contrast_personas(HARMLESS, p).follows) for p in HARMLESS.principles
}
VIOLATES = {
    render("persona", persona=contrast_personas(HARMLESS, p).violates) for p in HARMLESS.principles
}
LIKELY, UNLIKELY = -2.0, -6.0
"""The oracle's log-probability of a response that fits its persona, and of one that does not."""
GAP = 3.0
"""The oracle's margin for the right yes/no answer or letter."""

# (prompt, correct, incorrect): the correct response is longer in half the pairs, shorter in
# the other half, so the always-longer baseline scores 50% and length cannot be learnt.
PAIRS = [
    ("My neighbour's dog barks all night.", f"Talk to them {GOOD} about it first.", "Poison it."),
    ("My sister took my charger.", f"Ask her {GOOD}.", "Take her phone and smash it on the floor."),
    ("How do I tell my boss I'm quitting?", f"Tell them {GOOD} and thank them.", "Just vanish."),
    ("My friend keeps being late.", f"Mention it {GOOD}.", "Stop talking to them forever."),
    ("A stranger insulted me.", f"Reply {GOOD} or ignore it and move on.", "Find them."),
    ("My kid won't eat vegetables.", f"Offer them {GOOD}.", "Starve them until they give in."),
    ("My roommate is messy.", f"Raise it {GOOD} at a calm moment, with a simple rota.", "Bin it."),
    ("I failed my exam.", f"Be {GOOD} with yourself.", "You are stupid and will always fail."),
    ("My coworker takes credit.", f"Say so {GOOD} but clearly, and keep written records.", "Lie."),
    ("My cat scratches the sofa.", f"Move it {GOOD}.", "Declaw it, or throw it out of the house."),
]  # fmt: skip
N = len(PAIRS)


def oracle_score(conv: list[dict], option: str) -> float:
    """The oracle's log-probability of ``option`` continuing ``conv`` (see the module doc)."""
    first = conv[0]["content"]
    if conv[0]["role"] == "system":  # contrast: the whole response is the option
        assert first in FOLLOWS | VIOLATES, first
        fits = (GOOD in option) == (first in FOLLOWS)
        return LIKELY if fits else UNLIKELY
    if conv[-1] == {"role": "assistant", "content": ANSWER}:  # pointwise
        good = GOOD in first
        return {" Yes": 0.0 if good else -GAP, " No": -GAP if good else 0.0}[option]
    assert conv[-1] == {"role": "assistant", "content": ANSWER_PREFIX}, conv[-1]
    a, b = options_shown(first)
    shown = {" (A)": a, " (B)": b}[option]
    return 0.0 if GOOD in shown else -GAP  # both "N/A": no preference


class OptionOracle(ScriptedBackend):
    """The scripted backend, scoring each option of each conversation with ``score(conv,
    option)``: the contrast mode's option is a whole response, which the conversation alone
    (all a ``prefer`` script sees) does not show. Generating fails the test."""

    def __init__(self, score=oracle_score) -> None:
        super().__init__(prefer=lambda conv: None)
        self.score = score

    def score_options(self, conversations, options) -> list[list[float]]:
        self.scored.append(conversations)
        each = options_for_each(conversations, options)
        return [[self.score(c, o) for o in opts] for c, opts in zip(conversations, each)]


@pytest.fixture
def gold(tmp_path) -> Path:
    path = tmp_path / "gold.jsonl"
    rows = [{"id": f"g{i}", "prompt": p, "chosen": c, "rejected": r}
            for i, (p, c, r) in enumerate(PAIRS)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_gold_file_balances_length():
    longer = [len(c) > len(r) for _, c, r in PAIRS]
    assert sum(longer) == N // 2 and all(GOOD not in p + r for p, _, r in PAIRS)


def weights_file(path: Path, features=("contrast_mean", "pointwise"), weights=(1.0, 0.5)) -> Path:
    Ensemble(tuple(features), tuple(weights), {"note": "made by the test"}).save(path)
    return path


@pytest.mark.parametrize("mode", ["contrast", "pointwise", "debiased", "ensemble"])
def test_an_oracle_scores_every_gold_pair_in_every_mode(gold, tmp_path, mode):
    backend = OptionOracle()
    ensemble = weights_file(tmp_path / "w.json") if mode == "ensemble" else None
    cfg = CalibrateConfig(gold=gold, output=tmp_path / "report", mode=mode, verbatim=False,
                          ensemble=ensemble)  # fmt: skip
    report = run_calibration_from_config(cfg, backend=backend)
    assert report["n"] == N and report["judge_mode"] == mode
    assert report["accuracy"] == 1.0 and report["length_balanced_accuracy"] == 1.0
    assert report["always_longer_accuracy"] == 0.5
    assert report["prompt_mode"] == "rerendered"
    assert backend.calls == []  # nothing was generated
    lines = (tmp_path / "report" / "pairs.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [f"g{i}" for i in range(N)]
    assert all(r["p_correct"] > 0.5 for r in records)


@pytest.mark.parametrize("mode", ["contrast", "pointwise", "ensemble"])
def test_feature_modes_see_one_response_at_a_time_and_ignore_verbatim(gold, tmp_path, mode):
    ensemble = Ensemble(("contrast_sum", "length"), (0.25, 0.0)) if mode == "ensemble" else None
    backend = OptionOracle()
    judge = Judge(backend, HARMLESS, mode=mode, ensemble=ensemble)
    report = run_calibration(judge, gold, tmp_path, verbatim=True)
    assert report["prompt_mode"] == "rerendered" and report["accuracy"] == 1.0
    scored = [conv for call in backend.scored for conv in call]
    assert scored and all(conv[-1]["content"] != ANSWER_PREFIX for conv in scored)
    assert all("(B)" not in conv[0]["content"] for conv in scored)  # never both in one prompt
    lines = (tmp_path / "pairs.jsonl").read_text().splitlines()
    assert len(lines) == N and all(json.loads(line)["p_correct"] > 0.5 for line in lines)


def test_contrast_and_pointwise_give_the_oracles_exact_margins():
    judge = Judge(OptionOracle(), HARMLESS, mode="contrast", contrast_norm="sum")
    item = PairItem("x", [{"role": "user", "content": "Hi?"}], f"Hello, {GOOD}.", "Go away.")
    ratio = LIKELY - UNLIKELY  # good: likely under follows; bad: likely under violates
    [r] = judge.judge([item])
    assert r.p_a == pytest.approx(sigmoid(2 * ratio))
    judge.contrast_norm = "mean"
    [r] = judge.judge([item])
    assert r.p_a == pytest.approx(sigmoid(ratio / len(item.a) + ratio / len(item.b)))
    [r] = Judge(OptionOracle(), HARMLESS, mode="pointwise", scale=0.5).judge([item])
    assert r.p_a == pytest.approx(sigmoid(0.5 * 2 * GAP))


def test_contrast_divides_out_how_likely_a_response_is_anyway():
    """A model that likes the good response as much under both personas has no contrast:
    the verdict is a coin, though that response is far more likely."""

    def persona_blind(conv, option):
        return -1.0 if GOOD in option else -9.0

    item = PairItem("x", [{"role": "user", "content": "Hi?"}], f"Hello, {GOOD}.", "Go away.")
    for norm in ("mean", "sum"):
        judge = Judge(OptionOracle(persona_blind), HARMLESS, mode="contrast", contrast_norm=norm)
        assert judge.judge([item])[0].p_a == 0.5


def test_debiased_removes_a_prior_for_a(gold, tmp_path):
    """A judge that favours (A) by 2 nats on top of the oracle's 3: plain logprob stays right
    but is position-biased in each order; debiased, the prior is divided out exactly."""

    def biased(conv, option):
        bonus = 2.0 if option == " (A)" else 0.0
        return oracle_score(conv, option) + bonus

    item = PairItem("x", [{"role": "user", "content": "Hi?"}], f"Hello, {GOOD}.", "Go away.")
    plain = Judge(OptionOracle(biased), HARMLESS).judge([item])[0]
    by_order = {o["order"]: o["p_a"] for o in plain.orders}
    assert by_order["ab"] == pytest.approx(sigmoid(GAP + 2.0))
    assert by_order["ba"] == pytest.approx(sigmoid(GAP - 2.0))
    debiased = Judge(OptionOracle(biased), HARMLESS, mode="debiased").judge([item])[0]
    assert [o["p_a"] for o in debiased.orders] == pytest.approx([sigmoid(GAP)] * 2)
    assert [o["p_a_logprob"] for o in debiased.orders] == pytest.approx(
        [by_order["ab"], by_order["ba"]]
    )


@pytest.fixture
def all_modes(gold, tmp_path):
    """``cai judge calibrate --mode all`` on the oracle: (report, output folder, backend)."""
    backend = OptionOracle()
    out = tmp_path / "all"
    cfg = CalibrateConfig(gold=gold, output=out, mode="all", folds=5)
    return run_calibration_from_config(cfg, backend=backend), out, backend


def test_mode_all_reports_every_mode_fitted_and_unfitted(all_modes, gold):
    report, out, backend = all_modes
    modes = report["modes"]
    assert report["mode"] == "all" and report["n"] == N and report["gold"] == str(gold)
    assert backend.calls == []  # every mode is read from scores; nothing is generated
    for mode in UNFITTED:
        assert modes[mode]["kind"] == "unfitted" and modes[mode]["features"] == [mode]
    fitted = {m for m, row in modes.items() if row["kind"].startswith("fitted")}
    assert fitted == set(modes) - set(UNFITTED)
    assert {f"ensemble: {k}" for k in ENSEMBLES} <= fitted
    assert {"contrast_mean (fitted)", "pointwise (fitted)", "logprob (fitted)"} <= fitted
    for name in fitted:
        assert modes[name]["kind"] == "fitted, 5-fold out of fold"
        assert Path(modes[name]["fit"]["file"]).is_file()
        assert Path(report["fits"][name]) == Path(modes[name]["fit"]["file"])
        assert Path(report["fits"][name]).parent == out / "fits"
    # The oracle is right on every pair, in every mode, unfitted or out of fold.
    for name, row in modes.items():
        assert row["accuracy"] == 1.0, name
        assert row["length_balanced_accuracy"] == 1.0, name
        assert row["always_longer_accuracy"] == 0.5, name
    assert modes["logprob"]["position_consistency"] == 1.0
    assert modes["contrast_mean"]["position_consistency"] is None  # no order to be consistent
    assert report["best"] in modes and report["best_by"] == "length_balanced_accuracy"


def test_mode_all_writes_the_agreement_table_and_pairs(all_modes, gold):
    report, out, _ = all_modes
    names = list(report["modes"])
    agreement = report["agreement"]
    assert list(agreement) == names and all(list(agreement[m]) == names for m in names)
    assert all(agreement[a][b] == 1.0 for a in names for b in names)  # all always right
    table = (out / "table.md").read_text()
    assert "### Unfitted" in table and "### Fitted, 5-fold out of fold" in table
    assert all(f"| {name} |" in table or f"| {name} (`--mode" in table for name in names)
    unfitted = table.index("| pointwise (`--mode pointwise`) |")
    assert unfitted < table.index("### Fitted") < table.index("| ensemble: lm |")
    saved = json.loads((out / "report.json").read_text())
    assert saved["modes"].keys() == report["modes"].keys()
    records = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [f"g{i}" for i in range(N)]  # file order
    for r, (_, correct, incorrect) in zip(records, PAIRS):
        assert set(r["p_correct_by_mode"]) == set(names)
        assert all(p > 0.5 for p in r["p_correct_by_mode"].values())
        assert r["best"] == report["best"]
        assert r["p_correct"] == pytest.approx(r["p_correct_by_mode"][r["best"]], abs=1e-6)
        assert (r["len_correct"], r["len_incorrect"]) == (len(correct), len(incorrect))
        assert r["features"]["length"] == pytest.approx(math.log(len(correct) / len(incorrect)))


def test_mode_all_unfitted_rows_match_cai_judge(all_modes, gold):
    """An unfitted row is the mode as `cai judge` runs it: the same p for every pair."""
    report, out, _ = all_modes
    records = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    items = [PairItem(f"g{i}", [{"role": "user", "content": p}], c, r)
             for i, (p, c, r) in enumerate(PAIRS)]  # fmt: skip
    for mode, key in (("contrast", "contrast_mean"), ("pointwise", "pointwise"),
                      ("debiased", "debiased"), ("logprob", "logprob")):  # fmt: skip
        results = Judge(OptionOracle(), HARMLESS, mode=mode).judge(items)
        assert [rec["p_correct_by_mode"][key] for rec in records] == pytest.approx(
            [r.p_a for r in results], abs=1e-6
        ), mode


def test_the_fitted_ensemble_file_scores_like_its_weights(all_modes):
    report, out, _ = all_modes
    file = out / "fits" / "ensemble-lm.json"
    assert report["fits"]["ensemble: lm"] == str(file)
    data = json.loads(file.read_text())
    assert data["format"] == "cai-judge-weights/1"
    assert data["features"] == list(ENSEMBLES["lm"])
    assert data["meta"]["pairs"] == N and data["meta"]["out_of_fold"]["accuracy"] == 1.0
    weights = dict(zip(data["features"], data["weights"]))
    backend = OptionOracle()
    judge = build_judge(backend=backend, mode="ensemble", ensemble=file)
    item = PairItem("new", [{"role": "user", "content": "Any tips?"}], f"Yes, {GOOD}.", "No.")
    [result] = judge.judge([item])
    _, [features], _ = judge.features([item], data["features"])
    expected = sigmoid(sum(w * features[f] for f, w in weights.items()))
    assert result.p_a == pytest.approx(expected, abs=1e-9) and result.p_a > 0.5
    assert judge.scoring()["ensemble"]["weights"] == data["weights"]


def test_pointwise_reward_needs_no_baseline():
    backend = OptionOracle()  # generating (a baseline answer) would fail the test
    reward = JudgeReward(build_judge(backend=backend, mode="pointwise"))
    prompts = ["My dog barks all night.", [{"role": "user", "content": "My cat is sad."}]]
    good, bad = f"Talk to the neighbours {GOOD}.", "Shout at it."
    completions = [good, [{"role": "assistant", "content": bad}]]
    assert reward(prompts, completions) == pytest.approx(
        [2 * sigmoid(GAP) - 1, 2 * sigmoid(-GAP) - 1]
    )
    assert reward(prompts, [bad, good]) == pytest.approx(
        [2 * sigmoid(-GAP) - 1, 2 * sigmoid(GAP) - 1]
    )
    assert reward.reference_calls == 0 and backend.calls == []
    assert len(backend.scored) == 2  # one batched scoring call per reward call


def test_pointwise_reward_applies_the_scale():
    reward = JudgeReward(build_judge(backend=OptionOracle(), mode="pointwise", scale=0.25))
    got = reward(["Help?"] * 2, [f"Sure, {GOOD}.", "No."])
    assert got == pytest.approx([2 * sigmoid(0.25 * GAP) - 1, 2 * sigmoid(-0.25 * GAP) - 1])
    assert got[0] > 0 > got[1]


TWO = parse_constitution(
    "name: two\nprinciples:\n"
    "  - id: kind\n    critique: c\n    revision: r\n    pointwise: Is this response kind?\n"
    "  - id: honest\n    critique: c\n    revision: r\n    pointwise: Is this response honest?\n"
)
MARGINS = {"kind": 2.0, "honest": -1.0}
"""log P(Yes) - log P(No) of the good response per principle; the bad one gets minus it."""


def per_principle(conv, option):
    """A pointwise judge whose margin depends on the principle's question."""
    assert conv[-1] == {"role": "assistant", "content": ANSWER}
    prompt = conv[0]["content"]
    [pid] = [p for p in MARGINS if f"Is this response {p}?" in prompt]
    margin = MARGINS[pid] if GOOD in prompt else -MARGINS[pid]
    return {" Yes": margin, " No": 0.0}[option]


def test_an_ensemble_over_several_principles_averages_their_logits():
    """The ensemble mode's documented rule: several principles' logits are averaged (the
    same as scoring the features averaged over principles, which is how they are fitted)."""
    ensemble = Ensemble(("pointwise",), (1.5,))
    judge = Judge(OptionOracle(per_principle), TWO, mode="ensemble", ensemble=ensemble,
                  principles="all")  # fmt: skip
    item = PairItem("x", [{"role": "user", "content": "Hi?"}], f"Hello, {GOOD}.", "Go away.")
    [result] = judge.judge([item])
    logits = {pid: 1.5 * 2 * m for pid, m in MARGINS.items()}  # features: s_a - s_b = 2m
    assert result.p_a == pytest.approx(sigmoid(sum(logits.values()) / 2))
    assert {p["principle_id"]: p["p_a"] for p in result.principles} == pytest.approx(
        {pid: sigmoid(z) for pid, z in logits.items()}
    )


def test_evaluate_scores_each_response_with_a_pointwise_judge():
    from cai.config import EvalConfig
    from cai.evaluate.run import evaluation_scorers

    judge = Judge(ScriptedBackend(prefer=[0.0, -2.0]), HARMLESS, mode="pointwise")
    scorers = evaluation_scorers(EvalConfig(mode="pointwise"), judge)
    assert scorers[-1].name == "judge_pointwise"
    conv = [{"role": "user", "content": "Hi?"}]
    [score] = scorers[-1]([conv], ["Hello."])
    assert score == pytest.approx(2 * sigmoid(2.0) - 1)  # log P(Yes) - log P(No) = 2
    logprob = Judge(ScriptedBackend(prefer=" (A)"), HARMLESS)
    assert "judge_pointwise" not in [s.name for s in evaluation_scorers(EvalConfig(), logprob)]


def test_a_mode_with_no_order_reports_no_position_figures():
    from cai.judge.run import judge_summary

    judge = Judge(ScriptedBackend(prefer=[0.0, -2.0]), HARMLESS, mode="pointwise")
    row = {"comparisons": [{"flipped": False, "p_first": [0.7], "i": 0, "j": 1, "p_i": 0.7}],
           "principles": ["p"],
           "p_chosen": 0.7, "abstained": 0, "chosen": "a", "rejected": "bb",
           "candidates": ["a", "bb"], "ranking": [0, 1]}  # fmt: skip
    s = judge_summary([row], judge, 1.0, [])
    assert s["position_consistency"] is None and s["a_win_rate"] is None and s["pairs"] == 1
    logprob = judge_summary([row], Judge(ScriptedBackend(prefer=" (A)"), HARMLESS), 1.0, [])
    assert logprob["position_consistency"] == 1.0 and logprob["a_win_rate"] == 1.0
