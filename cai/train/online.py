"""``cai train grpo``, ``rloo`` and ``online-dpo``: online RL with reward functions.

Input: a prompt set (anything ``cai generate-revisions`` reads; default our red-team set).
Each row becomes ``{"prompt": [messages...]}`` plus the columns every row has (a boolean
``unsafe`` column feeds the safety switch, a ``reference`` column the judge's baseline).
Rewards come from ``cfg.rewards`` (reward models, the ``cai judge`` reward, combined as a
weighted sum or by the Llama 2 safety switch); ``reward_fn`` overrides them from code.
"""

from __future__ import annotations

import time

from cai import models
from cai.judge import build_labeller, build_reward
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


ONLINE = ("grpo", "rloo", "online-dpo")
"""The online methods, each a key of ``common.TRL_CONFIGS``."""


def train_online(cfg: OnlineRunConfig, algorithm: str, reward_fn: RewardFn | None = None) -> dict:
    """Train with GRPO, RLOO or online DPO; return the summary (``reward`` over steps).

    Online DPO with one judge reward (``OnlineDPORunConfig``'s default) is labelled by the
    judge comparing its two samples (``cai.judge.JudgeLabeller``); with other rewards, trl
    chooses the sample with the higher reward."""
    if algorithm not in ONLINE:
        raise ValueError(f"unknown online method {algorithm!r}; known: {', '.join(ONLINE)}")
    started = time.time()
    data = prompt_dataset(cfg)
    args = common.trl_config(algorithm, cfg)
    labeller = build_labeller(cfg.rewards) if algorithm == "online-dpo" and not reward_fn else None
    reward = (
        reward_fn
        or labeller
        or build_reward(
            cfg.rewards, cfg.model, cfg.combine, cfg.safety_threshold, cfg.unsafe_column
        )
    )
    model, tok = models.load_causal_lm(cfg.model, cfg.trust_remote_code)
    trainer = common.trl_class(algorithm, "trainer")(
        model=model,
        reward_funcs=[reward],
        args=args,
        processing_class=tok,
        train_dataset=data,
        peft_config=common.peft_config(cfg.lora),
    )
    common.train(trainer, cfg)
    key = "objective/scores" if algorithm == "online-dpo" else "reward"
    extra = {"reward": common.log_series(trainer, key), "reward_name": reward.__name__}
    if algorithm == "online-dpo":
        extra["reward_margins"] = common.log_series(trainer, "rewards/margins")
        if labeller is not None:  # per step: the judge's mean P(chosen is better)
            extra["reward"] = [sum(max(x, 1 - x) for x in p) / len(p) for p in labeller.labels]
            extra["reward_name"] = "judge P(chosen better)"
            p = [x for step in labeller.labels for x in step]
            extra["judge_labels"] = {  # a tie (p = 0.5) makes trl choose the first sample
                "pairs": len(p),
                "first_preferred": sum(x > 0.5 for x in p),
                "ties": sum(x == 0.5 for x in p),
                "confident": sum(abs(x - 0.5) >= 0.1 - 1e-9 for x in p),
            }
    info = {"rows": len(data), "provenance": {}}
    return common.finish(trainer, cfg, algorithm, started, info, extra)
