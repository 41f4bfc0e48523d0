"""`cai.train.online`: GRPO and RLOO with scripted rewards, a weighted sum and the judge."""

from __future__ import annotations

import pytest

from cai.train import config as tc
from tests.train.conftest import ONLINE, cfg, rises, target_reward


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
