"""``cai train reward``: a reward model (one-output sequence classifier) on AI preferences.

Input columns: ``prompt`` (messages), ``chosen`` and ``rejected`` (one-message assistant
lists), optional ``margin`` (for the margin loss, with ``use_margin``) and ``p_chosen`` (the
judge's soft label; pairs within ``min_confidence`` of 0.5 are dropped), as ``cai judge``
writes them. The summary reports the reward accuracy on the training data and, with
``eval_split``, on held-out preferences.
"""

from __future__ import annotations

import time

from cai import models
from cai.train import common
from cai.train.config import RewardRunConfig


def train_reward(cfg: RewardRunConfig) -> dict:
    started = time.time()
    raw = common.load_data(cfg)
    keep = ["prompt", "chosen", "rejected"] + (["margin"] if cfg.use_margin else [])
    data, dropped = common.preference_data(raw, cfg.dataset, cfg.min_confidence, keep)
    if cfg.use_margin:
        common.require_columns(data, ["margin"], cfg.dataset, "use_margin needs a margin column")
    evaluation = None
    if cfg.eval_split:
        held = common.load_data(cfg, split=cfg.eval_split)
        evaluation, _ = common.preference_data(held, cfg.dataset, 0.0, keep)
    model, tok = models.load_scalar_model(cfg.model, cfg.trust_remote_code)
    args = common.trl_config("reward", cfg)
    trainer = common.trl_class("reward", "trainer")(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=data,
        eval_dataset=evaluation,
        peft_config=common.peft_config(cfg.lora, task_type="SEQ_CLS"),
    )
    common.train(trainer, cfg)
    extra = {"train_accuracy": common.log_series(trainer, "accuracy")}
    if evaluation is not None:
        extra.update(common.held_out(trainer), eval_rows=len(evaluation))
    info = {
        "rows": len(data),
        "dropped_uncertain": dropped,
        "provenance": common.data_provenance(raw),
    }
    return common.finish(trainer, cfg, "reward", started, info, extra)
