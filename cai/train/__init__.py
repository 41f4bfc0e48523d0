"""``cai train``: thin builders over trl 1.12 (SFT, reward, DPO, PPO, GRPO, RLOO),
best-of-n rejection sampling and LoRA export. Each command is one module; what they share
(data, models, trl arguments, the finish) is in ``common``."""
