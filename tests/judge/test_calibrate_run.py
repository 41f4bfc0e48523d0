"""`cai judge calibrate` end to end, with scripted judges whose scores are known."""

from __future__ import annotations

import json

import pytest

from cai.constitution import load_constitution
from cai.judge import Judge, run_calibration
from cai.judge.calibration import read_gold
from tests.conftest import shared_file


class Scripted:
    """Prefers (A) always, or (as an oracle) whichever option holds a correct response."""

    name, model_name = "scripted", "scripted"

    def __init__(self, gold=None) -> None:
        self.pairs = [(g.correct.strip(), g.incorrect.strip()) for g in gold or []]

    def score_options(self, convs, options):
        out = []
        for conv in convs:
            text = conv[0]["content"]
            a_segment = text[text.rindex("(A)") + 3 : text.rindex("(B)")].strip()
            a_text = a_segment.removeprefix("[[[").removesuffix("]]]").strip()
            # The oracle knows this prompt's pair: its correct response is option A's text.
            a_wins = not self.pairs or any(c == a_text and i in text for c, i in self.pairs)
            out.append([0.0, -5.0] if a_wins else [-5.0, 0.0])
        return out

    def generate(self, convs, params):
        raise AssertionError("logprob mode must not generate")


@pytest.fixture(scope="module")
def hhh():
    return shared_file("cai-paper/hhh-eval-half.jsonl")


@pytest.mark.parametrize("verbatim", [True, False])
def test_always_a_scores_exactly_half_with_every_pair_flipped(hhh, tmp_path, verbatim):
    judge = Judge(Scripted(), load_constitution("harmless"))
    report = run_calibration(judge, hhh, tmp_path, verbatim=verbatim)
    assert report["n"] == 219
    assert report["accuracy"] == 0.5 and report["position_consistency"] == 0.0
    assert report["a_win_rate"] == 1.0
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["accuracy"] == 0.5
    assert (tmp_path / "reliability.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("verbatim", [True, False])
def test_oracle_scores_everything(hhh, tmp_path, verbatim):
    judge = Judge(Scripted(read_gold(hhh)), load_constitution("harmless"))
    report = run_calibration(judge, hhh, tmp_path, verbatim=verbatim)
    assert report["accuracy"] == 1.0 and report["position_consistency"] == 1.0
    assert report["accuracy_ci"] == [1.0, 1.0]


def test_a_seeded_sample_draws_from_the_whole_file(hhh, tmp_path):
    judge = Judge(Scripted(read_gold(hhh)), load_constitution("harmless"))
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
