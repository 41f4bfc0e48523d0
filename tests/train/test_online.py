"""`cai.train.online`: GRPO and RLOO with scripted rewards, a weighted sum and the judge."""

from __future__ import annotations

import pytest

from cai.train import config as tc
from tests.train.conftest import (
    ONLINE,
    base_weights,
    cfg,
    changed,
    loads_and_generates,
    rises,
    target_reward,
    weights,
)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_online_rl_raises_the_reward(algorithm, peaky, tmp_path):
    from cai.train.online import train_online

    c = cfg(
        tc.OnlineRunConfig,
        model=str(peaky.path),
        dataset="red-team",
        limit=16,
        output=tmp_path / algorithm,
        trl={**ONLINE, "max_steps": 24},
    )
    s = train_online(c, algorithm, reward_fn=target_reward(peaky.target))
    assert len(s["reward"]) == 24 and rises(s["reward"]), s["reward"]


def test_grpo_logs_the_weighted_sum_it_was_given(peaky, tmp_path):
    from cai.scorers.rewards import WeightedSum
    from cai.train.online import train_online

    seen: list[tuple[list, list]] = []

    def r1(prompts, completions, completion_ids, **kw):
        seen.append(completion_ids)
        return [len(ids) / 12 for ids in completion_ids]

    r2 = target_reward(peaky.target)
    combined = WeightedSum([r1, r2], [0.25, 3.0])
    c = cfg(
        tc.OnlineRunConfig,
        model=str(peaky.path),
        dataset="red-team",
        limit=8,
        output=tmp_path / "ws",
        trl={**ONLINE, "max_steps": 2},
    )
    s = train_online(c, "grpo", reward_fn=combined)
    by_hand = [
        sum(0.25 * len(ids) / 12 + 3.0 * r2(None, None, [ids])[0] for ids in batch) / len(batch)
        for batch in seen
    ]
    assert s["reward"] == pytest.approx(by_hand, abs=1e-5)


def test_grpo_runs_with_the_judge_as_reward(tmp_path):
    from cai.train.online import train_online

    c = cfg(
        tc.OnlineRunConfig,
        model="tiny-random",
        dataset="red-team",
        limit=4,
        output=tmp_path / "judge",
        rewards=[{"kind": "judge", "path": "tiny-random"}],
        trl={
            **ONLINE,
            "per_device_train_batch_size": 4,
            "num_generations": 2,
            "max_completion_length": 6,
            "max_steps": 2,
        },
    )
    s = train_online(c, "grpo")
    assert s["steps"] == 2 and s["reward_name"] == "cai_judge_reward"
    assert all(-1.0 <= r <= 1.0 for r in s["reward"])


def test_online_dpo_is_labelled_by_the_judge(tmp_path):
    from cai.train.online import train_online

    out = tmp_path / "odpo"
    c = cfg(
        tc.OnlineDPORunConfig,
        model="tiny-random",
        dataset="red-team",
        limit=4,
        output=out,
        rewards=[{"kind": "judge", "judge": "tiny-random"}],
        trl={"max_steps": 2, "per_device_train_batch_size": 2, "max_new_tokens": 6},
    )
    s = train_online(c, "online-dpo")
    assert s["kind"] == "online-dpo" and s["steps"] == 2
    labels = s["judge_labels"]
    assert labels["pairs"] == 4  # 2 steps of 2 prompts, each judged once as a pair
    assert 0 <= labels["confident"] <= 4 and 0 <= labels["first_preferred"] <= 4
    assert len(s["reward"]) == 2 and all(0.5 <= r <= 1.0 for r in s["reward"])
    assert changed(base_weights(), weights(out))
    loads_and_generates(out)


@pytest.mark.slow
def test_online_dpo_with_a_scripted_labeller_raises_the_target_rate(peaky, tmp_path):
    """trl chooses the sample with more target tokens; the policy learns to emit them.

    The reward (the mean target-token rate of each step's samples) rises on every seed
    tried (0-3: about 0.3 over the first third to 0.9+ over the last). The loss does not
    fall reliably: once most samples are all-target, both samples of a pair tie and the
    loss drifts back to log 2, so it is not asserted."""
    from cai.train.online import train_online

    c = cfg(
        tc.OnlineDPORunConfig,
        model=str(peaky.path),
        dataset="red-team",
        limit=16,
        output=tmp_path / "odpo-scripted",
        trl={
            "learning_rate": 5e-3,
            "per_device_train_batch_size": 8,
            "max_new_tokens": 12,
            "max_steps": 12,
        },
    )
    s = train_online(c, "online-dpo", reward_fn=target_reward(peaky.target))
    assert "judge_labels" not in s and s["reward_name"] == "target"
    assert len(s["reward"]) == 12 and rises(s["reward"], k=4), s["reward"]
