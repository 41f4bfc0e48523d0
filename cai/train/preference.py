"""``cai train dpo``, ``orpo`` and ``simpo``: offline preference optimisation on pairs.

Input columns: ``prompt`` (messages), ``chosen`` and ``rejected`` (one-message assistant
lists) and optional ``p_chosen``, as ``cai judge`` (or ``generate-revisions``) writes them.
Every method is trl's own trainer (``common.TRL_CONFIGS`` names the classes):

- ``dpo``: ``trl.DPOTrainer``; ``trl.loss_type`` picks the loss (sigmoid, ipo, robust,
  hinge, ...), with ``beta`` and ``label_smoothing``. It trains against a frozen reference.
- ``orpo`` (Hong et al. 2024): ``trl.experimental.orpo.ORPOTrainer``. SFT on the chosen
  answer plus ``beta`` (the paper's lambda) times the odds-ratio loss; no reference model.
- ``simpo`` (Meng et al. 2024): ``trl.experimental.cpo.CPOTrainer`` with
  ``loss_type="simpo"`` and ``cpo_alpha=0``: the length-normalised log-likelihood margin
  ``beta * (mean logp(chosen) - mean logp(rejected)) - simpo_gamma``; no reference model.

The summary keeps the reward margins and accuracies over steps and, with ``eval_split``,
the held-out pairs' accuracy (the chosen answer gets the higher implicit reward), margin
and loss, after training and (``eval_before``) before it: ORPO's and SimPO's rewards need
no reference, so the starting model already ranks the pairs; DPO's start at zero.
"""

from __future__ import annotations

import time

from cai import models
from cai.train import common
from cai.train.config import DPORunConfig

PAIRED = ("dpo", "orpo", "simpo")
"""The pairwise methods, each a key of ``common.TRL_CONFIGS``."""


def train_paired(cfg: DPORunConfig, method: str) -> dict:
    """Train ``cfg.model`` on the pairs of ``cfg.dataset`` with ``method`` (``PAIRED``);
    return the summary that is also saved as ``cai_train.json``."""
    if method not in PAIRED:
        raise ValueError(f"unknown pairwise method {method!r}; known: {', '.join(PAIRED)}")
    started = time.time()
    raw = common.load_data(cfg)
    keep = ["prompt", "chosen", "rejected"]
    data, dropped = common.preference_data(raw, cfg.dataset, cfg.min_confidence, keep)
    evaluation = None
    if cfg.eval_split:
        held = common.load_data(cfg, split=cfg.eval_split)
        evaluation, _ = common.preference_data(held, cfg.dataset, 0.0, keep)
    args = common.trl_config(method, cfg)
    model, tok = models.load_causal_lm(cfg.model, cfg.trust_remote_code)
    trainer, held = common.fit(method, cfg, args, model, tok, data, evaluation)
    extra = {
        "reward_margins": common.log_series(trainer, "rewards/margins"),
        "reward_accuracies": common.log_series(trainer, "rewards/accuracies"),
        "loss_type": getattr(args, "loss_type", method),
        "beta": args.beta,
    }
    if method == "orpo":
        extra["log_odds_ratio"] = common.log_series(trainer, "log_odds_ratio")
    if method == "simpo":
        extra["simpo_gamma"] = args.simpo_gamma
    extra.update(held)  # held-out pairs: how often the chosen answer wins
    info = {
        "rows": len(data),
        "dropped_uncertain": dropped,
        "provenance": common.data_provenance(raw),
    }
    return common.finish(trainer, cfg, method, started, info, extra)


def train_dpo(cfg: DPORunConfig) -> dict:
    """``cai train dpo`` (and IPO, with ``trl.loss_type: [ipo]``)."""
    return train_paired(cfg, "dpo")


def train_orpo(cfg: DPORunConfig) -> dict:
    """``cai train orpo``."""
    return train_paired(cfg, "orpo")


def train_simpo(cfg: DPORunConfig) -> dict:
    """``cai train simpo``."""
    return train_paired(cfg, "simpo")
