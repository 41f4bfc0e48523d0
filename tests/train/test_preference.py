"""`cai.train.dpo`: DPO (and IPO) on AI preferences."""

from __future__ import annotations

from cai.train import config as tc
from tests.train.conftest import TRL, base_weights, cfg, changed, weights


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
