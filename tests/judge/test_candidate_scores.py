"""``candidate_scores``: the pointwise judge's own score of each candidate in a ``cai judge``
row, on the real tiny model.

In ``pointwise`` mode each candidate's ``log P(" Yes") - log P(" No")`` is kept beside the
relative Bradley-Terry ``scores``: averaged over every principle the candidate was scored
under in its pairs, and read from the same ``score_options`` pass that makes the pair
features. Every other mode writes no such column.
"""

from __future__ import annotations

import json
import math

import pytest
from datasets import load_dataset

from cai.config import JudgeConfig
from cai.constitution import load_constitution
from cai.data import PromptRow
from cai.jobs import RowJournal
from cai.judge import pointwise_scores
from cai.judge.ensemble import Ensemble
from cai.judge.lmscore import YES_NO
from cai.judge.pairwise import Judge, sigmoid
from cai.judge.run import JudgeJob
from cai.train.config import KTORunConfig
from cai.train.kto import unpaired
from tests.fakes import ScriptedBackend, prefers_text

HARMLESS = load_constitution("harmless")
CONV = [{"role": "user", "content": "My neighbour's dog barks all night. What should I do?"}]
KIND = "Talk to your neighbour kindly, and if that fails, contact the local council."
CRUEL = "Poison the dog."
EARPLUGS = "Buy earplugs."


def judged_row(judge: Judge, cands: list[str], row_id: str = "dog") -> dict:
    """The preference row ``cai judge`` makes for one prompt with ``cands``."""
    [row] = JudgeJob(JudgeConfig(), judge)([PromptRow(row_id, CONV, 0, {"candidates": cands})])
    return row


def own_score(backend, response: str, principle_id: str) -> float:
    """The pointwise judge on ``response`` alone, in a call of its own."""
    principle = HARMLESS.principle(principle_id)
    [score] = pointwise_scores(backend, HARMLESS, [(CONV, response, principle)])
    return score


@pytest.fixture
def scored_calls(tiny_backend, monkeypatch):
    """The (rows, options) of every ``score_options`` call on the tiny backend."""
    calls: list[tuple[int, list]] = []
    score = tiny_backend.score_options

    def counting(convs, options):
        calls.append((len(convs), list(options)))
        return score(convs, options)

    monkeypatch.setattr(tiny_backend, "score_options", counting)
    return calls


@pytest.mark.parametrize("scale", [1.0, 2000.0])
def test_two_candidates_get_their_own_scores_from_the_one_pass(tiny_backend, scored_calls, scale):
    judge = Judge(tiny_backend, HARMLESS, mode="pointwise", scale=scale)
    row = judged_row(judge, [KIND, CRUEL])
    # One batched pass: one Yes/No row per candidate, nothing extra for candidate_scores.
    assert scored_calls == [(2, list(YES_NO))]
    [pid] = row["principles"]
    scored_calls.clear()
    expected = [own_score(tiny_backend, c, pid) for c in (KIND, CRUEL)]
    assert row["candidate_scores"] == pytest.approx(expected, abs=1e-4)
    assert expected[0] != pytest.approx(expected[1], abs=1e-4)  # two distinct scores
    # The soft label is the scaled difference of the same two scores.
    best, worst = row["ranking"]
    s = row["candidate_scores"]
    assert row["p_chosen"] == pytest.approx(sigmoid(scale * (s[best] - s[worst])), abs=1e-9)
    assert s[best] > s[worst]  # chosen is the candidate the judge scored higher
    assert row["chosen"][0]["content"] == [KIND, CRUEL][best]
    if scale > 1:  # far from a coin flip, so the identity above is not trivially 0.5
        assert abs(row["p_chosen"] - 0.5) > 0.2


def test_three_candidates_average_over_every_principle_they_were_scored_under(
    tiny_backend, scored_calls
):
    cands = [KIND, CRUEL, EARPLUGS]
    judge = Judge(tiny_backend, HARMLESS, mode="pointwise")  # one principle per pair
    row = judged_row(judge, cands, row_id="k3")
    assert scored_calls == [(6, list(YES_NO))]  # 3 pairs x 2 responses, one pass
    scored_calls.clear()
    scorings: dict[int, list[float]] = {0: [], 1: [], 2: []}
    pids = set()
    for comp in row["comparisons"]:
        i, j = comp["i"], comp["j"]
        [(pid, _q)] = judge.questions(f"k3:{i}-{j}")
        pids.add(pid)
        for c in (i, j):
            scorings[c].append(own_score(tiny_backend, cands[c], pid))
    assert len(pids) == 3, "each pair should sample its own principle for this id"
    expected = [sum(v) / len(v) for _, v in sorted(scorings.items())]
    assert row["candidate_scores"] == pytest.approx(expected, abs=1e-5)
    # Averaging mattered: a candidate's scorings under different principles differ.
    assert max(abs(a - b) for a, b in (scorings[0], scorings[1], scorings[2])) > 1e-4
    assert len(row["candidate_scores"]) == len(row["candidates"]) == 3


def test_several_principles_per_pair_are_averaged(tiny_backend):
    judge = Judge(tiny_backend, HARMLESS, mode="pointwise", principles=2)
    row = judged_row(judge, [KIND, CRUEL])
    assert len(row["principles"]) == 2
    expected = [
        sum(own_score(tiny_backend, c, pid) for pid in row["principles"]) / 2 for c in (KIND, CRUEL)
    ]
    assert row["candidate_scores"] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("mode", ["logprob", "debiased", "contrast", "likelihood", "ensemble"])
def test_other_modes_on_the_tiny_model_write_no_candidate_scores(tiny_backend, mode):
    # The ensemble computes the pointwise feature, but its verdict is not that score.
    ensemble = Ensemble(("contrast_mean", "pointwise"), (1.0, 1.0)) if mode == "ensemble" else None
    judge = Judge(tiny_backend, HARMLESS, mode=mode, ensemble=ensemble)
    row = judged_row(judge, [KIND, CRUEL, EARPLUGS])
    assert "candidate_scores" not in row and len(row["scores"]) == 3


@pytest.mark.parametrize("mode", ["cot", "generate"])
def test_generating_modes_write_no_candidate_scores(mode):
    backend = ScriptedBackend(answer="(A)", prefer=prefers_text("kindly"))
    row = judged_row(Judge(backend, HARMLESS, mode=mode), [KIND, CRUEL])
    assert "candidate_scores" not in row


def test_cai_judge_pointwise_writes_the_column_and_kto_reads_it(cai, tmp_path):
    rows = [
        {"id": "a", "prompt": CONV[0]["content"], "candidates": [KIND, CRUEL, EARPLUGS]},
        {"id": "b", "prompt": "My sister took my charger.", "candidates": ["Ask her.", "Hit her."]},
    ]
    src = tmp_path / "cands.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "prefs"
    res = cai("judge", "--mode", "pointwise", "--judge-model", "tiny-random", "--prompts", src,
              "-o", out, "--batch-size", "4")  # fmt: skip
    assert res.code == 0, res.err
    written, _ = RowJournal(out / "rows.jsonl").read()
    for r in written:
        assert len(r["candidate_scores"]) == len(r["candidates"])
        assert all(isinstance(s, float) and math.isfinite(s) for s in r["candidate_scores"])
    assert "`candidate_scores`" in (out / "README.md").read_text()
    ds = load_dataset(str(out))["train"]
    scores = sorted(s for r in ds for s in r["candidate_scores"])
    threshold = (scores[0] + scores[-1]) / 2
    cfg = KTORunConfig(dataset=str(out), score_column="candidate_scores", threshold=threshold)
    kto_rows, info = unpaired(ds, cfg)
    assert len(kto_rows) == 5 and info["desirable"] == sum(s >= threshold for s in scores)
