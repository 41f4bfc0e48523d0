"""``cai train grpo`` and ``cai train rloo``: online RL with reward functions.

Input: a prompt set (anything ``cai generate-revisions`` reads; default our red-team set).
Each row becomes ``{"prompt": [messages...]}`` plus the columns every row has (a boolean
``unsafe`` column feeds the safety switch, a ``reference`` column the judge's baseline).
Rewards come from ``cfg.rewards`` (reward models, the ``cai judge`` reward, combined as a
weighted sum or by the Llama 2 safety switch); ``reward_fn`` overrides them from code.
"""

from __future__ import annotations

import time

from cai import models
from cai.judge import build_reward
from cai.scorers import RewardFn
from cai.train import common
from cai.train.config import OnlineRunConfig


def prompt_dataset(cfg: common.TrainConfig):
    """Prompts as conversational ``prompt`` rows, with the columns all rows share."""
    from datasets import Dataset

    from cai.data import read_prompts

    rows, rejects = read_prompts(cfg.dataset, split=cfg.split, limit=cfg.limit)
    if rejects:
        print(f"skipped {len(rejects)} unusable prompt row(s) of {cfg.dataset}")
    shared = set.intersection(*(set(r.extra) for r in rows)) - {"prompt", "provenance"}
    return Dataset.from_list(
        [{"prompt": r.conversation, **{k: r.extra[k] for k in sorted(shared)}} for r in rows]
    )


TRAINERS = {
    "grpo": ("GRPOConfig", "GRPOTrainer"),
    "rloo": ("RLOOConfig", "RLOOTrainer"),
}


def train_online(cfg: OnlineRunConfig, algorithm: str, reward_fn: RewardFn | None = None) -> dict:
    """Train with GRPO or RLOO; return the summary (``reward`` over steps included)."""
    config_name, trainer_name = TRAINERS[algorithm]
    started = time.time()
    data = prompt_dataset(cfg)
    reward = reward_fn or build_reward(
        cfg.rewards, cfg.model, cfg.combine, cfg.safety_threshold, cfg.unsafe_column
    )
    model, tok = models.load_causal_lm(cfg.model, cfg.trust_remote_code)
    args = common.trl_args(
        common.trl_attr(config_name),
        cfg,
        num_generations=4,
        max_completion_length=64,
        learning_rate=1e-5,
    )
    trainer = common.trl_attr(trainer_name)(
        model=model,
        reward_funcs=[reward],
        args=args,
        processing_class=tok,
        train_dataset=data,
        peft_config=common.peft_config(cfg.lora),
    )
    common.train(trainer, cfg)
    extra = {"reward": common.log_series(trainer, "reward"), "reward_name": reward.__name__}
    info = {"rows": len(data), "provenance": {}}
    return common.finish(trainer, cfg, algorithm, started, info, extra)
