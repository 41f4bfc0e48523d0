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


@pytest.mark.parametrize("kind", ["orpo", "simpo", "kto", "online-dpo"])
def test_new_trainers_have_help_that_names_their_trl_class(cai, kind):
    from cai.train.common import TRL_CONFIGS

    r = cai("train", kind, "--help")
    assert r.code == 0, r.err
    module, _, trainer, _ = TRL_CONFIGS[kind]
    text = " ".join(r.out.split())
    assert (f"{module}.{trainer}" if module == "trl" else module) in text


def test_cli_trains_kto_on_a_score_column(cai, tmp_path):
    from tests.train.conftest import SAFE, TOPICS, UNSAFE, conv, write_jsonl

    rows = [
        {
            "prompt": conv(t),
            "completion": (SAFE if i % 2 else UNSAFE)[0].format(t=t),
            "s": 0.9 if i % 2 else 0.1,
        }
        for i, t in enumerate(TOPICS[:6])
    ]
    scored = write_jsonl(tmp_path / "scored.jsonl", rows)
    out = tmp_path / "cli-kto"
    args = ["train", "kto", "--model", "tiny-random", "--dataset", scored, "-o", out]
    r = cai(*args, "--score-column", "s", "--threshold", "0.5", "--max-steps", "2")
    assert r.code == 0, r.err
    assert "KTO rows: 3 desirable, 3 undesirable" in r.out and "kto: 2 steps" in r.out
    saved = json.loads((out / "cai_train.json").read_text())
    assert saved["kind"] == "kto" and saved["steps"] == 2
    assert saved["data"]["source"] == "scores in 's' >= 0.5"
    assert saved["config"]["score_column"] == "s" and saved["config"]["threshold"] == 0.5
    # A threshold above every score: one line that says so, before any training.
    r = cai(*args[:-1], tmp_path / "none", "--score-column", "s", "--threshold", "5")
    assert r.code == 2 and "all 6 KTO rows are undesirable" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "none").exists()
