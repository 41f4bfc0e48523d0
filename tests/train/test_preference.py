"""`cai.train.preference`: DPO (and IPO), ORPO and SimPO on AI preferences."""

from __future__ import annotations

import pytest

from cai.errors import CaiError
from cai.train import config as tc
from tests.train.conftest import (
    TRL,
    base_weights,
    cfg,
    changed,
    loads_and_generates,
    weights,
    write_jsonl,
)

CONFIGS = {"dpo": tc.DPORunConfig, "orpo": tc.ORPORunConfig, "simpo": tc.SimPORunConfig}


def test_dpo_loss_falls_and_margins_are_logged(data, tmp_path):
    from cai.train.preference import train_dpo

    out = tmp_path / "dpo"
    trl = {**TRL, "learning_rate": 1e-3, "loss_type": ["ipo"], "beta": 0.2}
    s = train_dpo(
        cfg(tc.DPORunConfig, model="tiny-random", dataset=str(data.prefs), output=out, trl=trl)
    )
    assert s["loss_type"] == ["ipo"] and s["beta"] == 0.2
    assert s["last_loss"] < s["first_loss"]
    assert len(s["reward_margins"]) == 12 and s["reward_margins"][-1] > s["reward_margins"][0]
    assert changed(base_weights(), weights(out))


@pytest.mark.parametrize("method", ["orpo", "simpo"])
def test_reference_free_methods_learn_the_preferences(method, data, tmp_path):
    from cai.train.preference import train_paired

    out = tmp_path / method
    c = cfg(
        CONFIGS[method],
        model="tiny-random",
        dataset=str(data.prefs),
        output=out,
        trl={**TRL, "learning_rate": 1e-3},
    )
    s = train_paired(c, method)
    assert s["kind"] == method and s["steps"] == 12
    assert s["last_loss"] < s["first_loss"], s["log_history"]
    margins = s["reward_margins"]
    assert len(margins) == 12 and margins[-1] > margins[0], margins
    assert changed(base_weights(), weights(out))
    loads_and_generates(out)
    if method == "simpo":
        assert s["loss_type"] == "simpo" and s["simpo_gamma"] == 1.0
    else:
        assert len(s["log_odds_ratio"]) == 12


def no_rejected(tmp_path):
    rows = [
        {
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "chosen": [{"role": "assistant", "content": f"a{i}"}],
        }
        for i in range(4)
    ]
    return write_jsonl(tmp_path / "no-rejected.jsonl", rows)


@pytest.mark.parametrize("method", ["dpo", "orpo", "simpo", "kto"])
def test_a_missing_column_fails_in_one_line_before_the_model_loads(method, tmp_path, monkeypatch):
    from cai import models
    from cai.train.kto import train_kto
    from cai.train.preference import train_paired

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the columns were checked")

    monkeypatch.setattr(models, "load_causal_lm", no_model)
    dataset = str(no_rejected(tmp_path))
    out = tmp_path / "out"
    if method == "kto":
        c = cfg(tc.KTORunConfig, model="tiny-random", dataset=dataset, output=out)
        run = lambda: train_kto(c)  # noqa: E731
    else:
        c = cfg(CONFIGS[method], model="tiny-random", dataset=dataset, output=out)
        run = lambda: train_paired(c, method)  # noqa: E731
    with pytest.raises(CaiError) as e:
        run()
    assert "\n" not in str(e.value) and "rejected" in str(e.value)
    assert not out.exists()


@pytest.mark.parametrize("method", ["simpo", "kto"])
def test_an_eval_split_reports_held_out_figures(method, data, tmp_path):
    """With ``eval_split``, the summary has the held-out pairs' loss and margin, and, for the
    pairwise methods, how often the chosen answer gets the higher implicit reward."""
    import datasets

    from cai.train import train_kto, train_paired

    rows = datasets.load_dataset("json", data_files=str(data.prefs), split="train")
    folder = tmp_path / "prefs"
    datasets.DatasetDict({"train": rows, "test": rows.select(range(1, 5))}).save_to_disk(folder)
    cls = tc.KTORunConfig if method == "kto" else tc.SimPORunConfig
    c = cfg(cls, model="tiny-random", dataset=str(folder), eval_split="test",
            output=tmp_path / method, trl={**TRL, "max_steps": 3})  # fmt: skip
    s = train_kto(c) if method == "kto" else train_paired(c, method)
    assert s["eval_rows"] == (8 if method == "kto" else 4)
    assert s["eval_loss"] is not None and s["eval_margin"] is not None
    assert s["eval_before"]["eval_loss"] is not None  # the same pairs before training
    if method != "kto":
        assert 0.0 <= s["eval_accuracy"] <= 1.0
