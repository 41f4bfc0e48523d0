"""`cai train`: flags, `--set` and errors on the command line."""

from __future__ import annotations

import json

import pytest

from tests.train.conftest import make_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("train-data"))


def test_cli_trains_with_set_and_reports(cai, data, tmp_path):
    out = tmp_path / "cli-dpo"
    r = cai(
        "train",
        "dpo",
        "--model",
        "tiny-random",
        "--dataset",
        data.prefs,
        "-o",
        out,
        "--max-steps",
        "2",
        "--set",
        "beta=0.3",
        "--set",
        "report_to=[]",
        "--loss-type",
        "sigmoid",
        "--min-confidence",
        "0.2",
    )
    assert r.code == 0, r.err
    saved = json.loads((out / "cai_train.json").read_text())
    assert saved["steps"] == 2 and saved["beta"] == 0.3 and saved["data"]["dropped_uncertain"] == 1
    r = cai("train", "ppo", "--model", "tiny-random", "-o", tmp_path / "p")
    assert r.code == 2 and "needs a reward model" in r.err
    r = cai("train", "sft", "--dataset", data.sft, "--set", "oops")
    assert r.code == 2 and "key=value" in r.err


def test_toxicity_penalty_flag_becomes_a_weighted_toxicity_reward():
    from cai.cli.train import _reward_specs

    assert _reward_specs(None, [2.0], None, toxicity=True) == [{"kind": "toxicity", "weight": 2.0}]
