"""`cai.best_of_n`: sample n answers, keep the one with the highest reward."""

from __future__ import annotations

from cai.config import BestOfNConfig
from tests.train.conftest import cfg


def test_best_of_n_keeps_the_highest_reward(tmp_path):
    from datasets import load_dataset

    from cai.best_of_n import run_best_of_n

    def longest(prompts, completions, **kw):
        return [float(len(c)) for c in completions]

    c = cfg(
        BestOfNConfig,
        prompts="red-team",
        limit=3,
        n=3,
        output=tmp_path / "bon",
        policy={"model": "tiny-random"},
        sampling={"max_new_tokens": 8, "temperature": 1.0},
    )
    s = run_best_of_n(c, reward_fn=longest)
    rows = load_dataset(str(tmp_path / "bon"))["train"]
    assert len(rows) == 3 and s["mean_best_reward"] >= s["mean_sample_reward"]
    for r in rows:
        assert r["reward"] == max(r["rewards"]) and len(r["candidates"]) == 3
        assert r["completion"][0]["content"] == max(r["candidates"], key=len)
    assert run_best_of_n(c, reward_fn=longest)["resumed_rows"] == 3
