"""`cai.train.reward`: a reward model from AI preferences."""

from __future__ import annotations

from cai.train import config as tc
from tests.train.conftest import SAFE, TRL, UNSAFE, cfg, conv


def test_reward_model_learns_ai_preferences_and_drops_coin_flips(data, tmp_path):
    from cai.train.reward import train_reward

    out = tmp_path / "rm"
    s = train_reward(
        cfg(
            tc.RewardRunConfig,
            model="tiny-random",
            dataset=str(data.prefs),
            output=out,
            use_margin=True,
            trl={**TRL, "learning_rate": 1e-2},
        )
    )
    assert s["data"]["dropped_uncertain"] == 1 and s["data"]["rows"] == data.n_prefs - 1
    assert s["last_loss"] < s["first_loss"]
    assert s["train_accuracy"][-1] == 1.0
    from cai.scorers.rewards import ModelReward

    rm = ModelReward(str(out))
    t = "a locksmith"
    good, bad = rm([conv(t)] * 2, [SAFE[0].format(t=t), UNSAFE[0].format(t=t)])
    assert good > bad
