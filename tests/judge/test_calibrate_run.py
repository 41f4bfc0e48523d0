"""`cai judge calibrate` end to end, with scripted judges whose scores are known."""

from __future__ import annotations

import json

import pytest

from cai.constitution import load_constitution
from cai.judge import Judge, run_calibration
from cai.judge.calibration import read_gold
from tests.conftest import shared_file
from tests.fakes import ScriptedBackend


def gold_oracle(gold) -> ScriptedBackend:
    """A judge that prefers whichever option holds the correct response of its gold pair."""
    pairs = [(g.correct.strip(), g.incorrect.strip()) for g in gold]

    def prefer(conv):
        text = conv[0]["content"]
        a_segment = text[text.rindex("(A)") + 3 : text.rindex("(B)")].strip()
        a_text = a_segment.removeprefix("[[[").removesuffix("]]]").strip()
        # The oracle knows this prompt's pair: its correct response is option A's text.
        a_wins = any(c == a_text and i in text for c, i in pairs)
        return " (A)" if a_wins else " (B)"

    return ScriptedBackend(prefer=prefer)


def always_a() -> ScriptedBackend:
    """A judge that prefers (A) whatever it is shown; it never generates (logprob mode)."""
    return ScriptedBackend(prefer=" (A)")


@pytest.fixture(scope="module")
def hhh():
    return shared_file("cai-paper/hhh-eval-half.jsonl")


@pytest.mark.parametrize("verbatim", [True, False])
def test_always_a_scores_exactly_half_with_every_pair_flipped(hhh, tmp_path, verbatim):
    judge = Judge(always_a(), load_constitution("harmless"))
    report = run_calibration(judge, hhh, tmp_path, verbatim=verbatim)
    assert report["n"] == 219
    assert report["accuracy"] == 0.5 and report["position_consistency"] == 0.0
    assert report["a_win_rate"] == 1.0
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["accuracy"] == 0.5
    assert (tmp_path / "reliability.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("verbatim", [True, False])
def test_oracle_scores_everything(hhh, tmp_path, verbatim):
    judge = Judge(gold_oracle(read_gold(hhh)), load_constitution("harmless"))
    report = run_calibration(judge, hhh, tmp_path, verbatim=verbatim)
    assert report["accuracy"] == 1.0 and report["position_consistency"] == 1.0
    assert report["accuracy_ci"] == [1.0, 1.0]


def test_a_seeded_sample_draws_from_the_whole_file(hhh, tmp_path):
    judge = Judge(gold_oracle(read_gold(hhh)), load_constitution("harmless"))
    rows = [
        run_calibration(judge, hhh, tmp_path, verbatim=True, sample=8, seed=s)["subsample"]["rows"]
        for s in (0, 0, 1)
    ]
    assert rows[0] == rows[1] != rows[2]
    assert len(set(rows[0])) == 8 and max(rows[0] + rows[2]) >= 8  # not just the first 8
    assert json.loads((tmp_path / "report.json").read_text())["n"] == 8


def test_cli_calibrate_on_tiny_model(cai, hhh, tmp_path):
    res = cai("judge", "calibrate", "--gold", hhh, "--judge-model", "tiny-random", "--limit", "6",
              "-o", tmp_path)  # fmt: skip
    assert res.code == 0, res.err
    assert "accuracy" in res.out and "position consistency" in res.out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["n"] == 6 and report["judge_model"] == "tiny-random"
