"""``cai train``: thin builders over trl 1.12 (SFT, reward, DPO, ORPO, SimPO, KTO, PPO, GRPO,
RLOO, online DPO) and LoRA export. Each command is one module; what they share (data,
models, trl arguments, the finish) is in ``common``. trl is imported only inside the
trainers, so importing this package is cheap.
"""

from __future__ import annotations

from cai.train.export import merge_lora
from cai.train.kto import train_kto
from cai.train.online import train_online
from cai.train.ppo import train_ppo
from cai.train.preference import train_dpo, train_orpo, train_paired, train_simpo
from cai.train.reward import train_reward
from cai.train.sft import train_sft

__all__ = [
    "merge_lora",
    "train_dpo",
    "train_kto",
    "train_online",
    "train_orpo",
    "train_paired",
    "train_ppo",
    "train_reward",
    "train_sft",
    "train_simpo",
]
