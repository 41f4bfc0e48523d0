"""`cai.train.ppo`: PPO against a scripted reward model on the peaky tiny model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from cai.train import config as tc
from tests.train.conftest import cfg, rises


class CountTargets(torch.nn.Module):
    """A scripted reward 'backbone': hidden state = running count of target tokens."""

    def __init__(self, target: set[int], vocab: int) -> None:
        super().__init__()
        mask = torch.zeros(vocab)
        mask[list(target)] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, input_ids, attention_mask=None, **kw):
        hits = self.mask[input_ids] * attention_mask
        return SimpleNamespace(hidden_states=[hits.cumsum(1).unsqueeze(-1)])


@pytest.mark.slow
def test_ppo_raises_the_reward_of_a_scripted_reward_model(peaky, tmp_path):
    from cai.models import load_scalar_model
    from cai.train.ppo import train_ppo

    rm, _ = load_scalar_model(str(peaky.path))
    rm.model = CountTargets(peaky.target, peaky.vocab)  # trl reads base_model_prefix "model"
    rm.score = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.ones_(rm.score.weight)
    trl = {
        "learning_rate": 3e-3,
        "per_device_train_batch_size": 4,
        "response_length": 12,
        "total_episodes": 96,
        "num_ppo_epochs": 2,
        "kl_coef": 0.01,
    }
    c = cfg(
        tc.PPORunConfig,
        model=str(peaky.path),
        dataset="red-team",
        limit=16,
        output=tmp_path / "ppo",
        trl=trl,
    )
    s = train_ppo(c, reward_model=rm)
    assert len(s["scores"]) == 24 and rises(s["scores"], k=5), s["scores"]
    assert (tmp_path / "ppo" / "model.safetensors").is_file()
