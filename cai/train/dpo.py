"""``cai train dpo``: direct preference optimisation on AI preferences.

Input columns: ``prompt`` (messages), ``chosen`` and ``rejected`` (one-message assistant
lists) and optional ``p_chosen``, as ``cai judge`` (or ``generate-revisions``) writes them.
The loss is trl's: set ``trl.loss_type`` (sigmoid, ipo, robust, hinge, ...), ``trl.beta``
and ``trl.label_smoothing``. The summary keeps the reward margins over steps.
"""

from __future__ import annotations

import time

from cai import models
from cai.train import common
from cai.train.config import DPORunConfig


def train_dpo(cfg: DPORunConfig) -> dict:
    from trl import DPOConfig, DPOTrainer

    started = time.time()
    raw = common.load_data(cfg)
    keep = ["prompt", "chosen", "rejected"]
    data, dropped = common.preference_data(raw, cfg.dataset, cfg.min_confidence, keep)
    model, tok = models.load_causal_lm(cfg.model, cfg.trust_remote_code)
    args = common.trl_args(DPOConfig, cfg, learning_rate=5e-6)
    trainer = DPOTrainer(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=data,
        peft_config=common.peft_config(cfg.lora),
    )
    common.train(trainer, cfg)
    extra = {
        "reward_margins": common.log_series(trainer, "rewards/margins"),
        "reward_accuracies": common.log_series(trainer, "rewards/accuracies"),
        "loss_type": args.loss_type,
        "beta": args.beta,
    }
    info = {
        "rows": len(data),
        "dropped_uncertain": dropped,
        "provenance": common.data_provenance(raw),
    }
    return common.finish(trainer, cfg, "dpo", started, info, extra)
