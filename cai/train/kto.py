"""``cai train kto``: KTO (Ethayarajh et al. 2024) on unpaired good/bad completions.

trl's ``KTOTrainer`` (``from trl import KTOTrainer``; promoted from ``trl.experimental.kto``
in trl 1.12) takes rows ``{prompt, completion, label}``. ``unpaired`` derives them from:

- **scores** (``score_column`` and ``threshold``): a per-completion score; at or above the
  threshold is desirable. Either one number per row beside a ``completion`` column, or a
  list with one number per ``candidates`` entry, as ``cai judge`` writes them (``scores``,
  the Bradley-Terry strengths within a prompt; ``candidate_scores`` in pointwise mode, each
  candidate's own ``log P(Yes) - log P(No)``)::

      {"prompt": [...], "candidates": ["Sure...", "I can't..."], "candidate_scores": [-1.2, 0.8]}
      -> {"prompt": [...], "completion": [{"role": "assistant", "content": "Sure..."}],
          "label": false}
         {"prompt": [...], "completion": [{"role": "assistant", "content": "I can't..."}],
          "label": true}

- **labels**: trl's own format, a boolean ``label`` beside ``prompt`` and ``completion``;
- **pairs**: ``prompt``, ``chosen``, ``rejected`` (chosen desirable, rejected undesirable);
  pairs within ``min_confidence`` of a coin flip and pairs of two equal texts are dropped.
"""

from __future__ import annotations

import math
import random
import time

from cai import models
from cai._util import canonical_hash
from cai.data import as_messages, response_text
from cai.errors import CaiError
from cai.train import common
from cai.train.config import KTORunConfig

HINT = (
    "give pairs (prompt, chosen, rejected), trl's unpaired rows (prompt, completion, label), "
    "or a per-completion score with --score-column and --threshold"
)


def _say(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _row(prompt, completion, label: bool, **extra) -> dict:
    """One KTO row, always conversational (trl guesses the format from one field, so a
    string prompt beside a message completion would break inside trl)."""
    completion = completion if isinstance(completion, list) else _say(completion or "")
    return {"prompt": as_messages(prompt), "completion": completion, "label": label, **extra}


def _label(value) -> bool | None:
    """A label column's value as a bool: strings say true/false, yes/no or 1/0."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "yes", "1", "desirable"):
            return True
        if text in ("false", "no", "0", "undesirable"):
            return False
        return None
    return None if value is None else bool(value)


def _scored(ds, cfg: KTORunConfig) -> list[dict]:
    col = cfg.score_column
    common.require_columns(ds, ["prompt", col], cfg.dataset, HINT)
    listed = "candidates" in ds.column_names and any(isinstance(v, list) for v in ds[col])
    if not listed:
        common.require_columns(ds, ["completion"], cfg.dataset, f"{col} is one score per row")
    rows, seen = [], set()
    for r in ds:
        if listed:
            cands, scores = r["candidates"] or [], r[col] or []
            if r[col] is not None and len(cands) != len(scores):  # None: a row not scored
                raise CaiError(
                    f"{cfg.dataset}: row {r.get('id', '?')}: {len(cands)} candidates but "
                    f"{len(scores)} values in {col!r}; a list score needs one per candidate"
                )
            key = canonical_hash(r["prompt"], 16)
            # `emit_pairs: all` repeats a prompt's candidates on each of its pair rows
            pairs = [(response_text(c) or "", s) for c, s in zip(cands, scores)
                     if (key, response_text(c)) not in seen]  # fmt: skip
            seen.update((key, response_text(c)) for c in cands)
        else:
            pairs = [(r["completion"], r[col])]
        for completion, score in pairs:
            if score is None or not isinstance(score, (int, float)) or math.isnan(score):
                continue
            rows.append(_row(r["prompt"], completion, bool(score >= cfg.threshold),
                             score=float(score)))  # fmt: skip
    return rows


def _paired(ds, cfg: KTORunConfig) -> tuple[list[dict], int]:
    pairs, dropped = common.preference_data(ds, cfg.dataset, cfg.min_confidence,
                                            ["prompt", "chosen", "rejected"])  # fmt: skip
    rows = []
    for r in pairs:
        if response_text(r["chosen"]) == response_text(r["rejected"]):
            dropped += 1
            continue
        rows.append(_row(r["prompt"], r["chosen"], True))
        rows.append(_row(r["prompt"], r["rejected"], False))
    return rows, dropped


def unpaired(ds, cfg: KTORunConfig) -> tuple[list[dict], dict]:
    """KTO rows ``{prompt, completion, label}`` from ``ds`` and what was done to make them."""
    dropped = 0
    if cfg.score_column:
        rows, source = _scored(ds, cfg), f"scores in {cfg.score_column!r} >= {cfg.threshold}"
    elif "label" in ds.column_names:
        common.require_columns(ds, ["prompt", "completion", "label"], cfg.dataset, HINT)
        rows = [_row(r["prompt"], r["completion"], _label(r["label"]))
                for r in ds if _label(r["label"]) is not None]  # fmt: skip
        source = "labels"
    else:
        common.require_columns(ds, ["prompt", "chosen", "rejected"], cfg.dataset, HINT)
        rows, dropped = _paired(ds, cfg)
        source = "pairs (chosen desirable, rejected undesirable)"
    good = sum(r["label"] for r in rows)
    if not rows:
        raise CaiError(f"{cfg.dataset}: no KTO rows ({source}): no row has a usable value")
    if good == 0 or good == len(rows):
        side = "desirable" if good else "undesirable"
        raise CaiError(
            f"{cfg.dataset}: all {len(rows)} KTO rows are {side} ({source}); KTO needs both "
            "kinds. With scores, pick a threshold between their smallest and largest value."
        )
    # trl's KTO reads batches in order and estimates its KL term from each batch's
    # completions shifted by one: a seeded shuffle keeps a prompt's own answers (pairs,
    # candidates) and one label's rows from sitting side by side
    random.Random(cfg.seed).shuffle(rows)
    info = {"source": source, "desirable": good, "undesirable": len(rows) - good,
            "dropped": dropped}  # fmt: skip
    return rows, info


def _dataset(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list([{k: r[k] for k in ("prompt", "completion", "label")} for r in rows])


def train_kto(cfg: KTORunConfig) -> dict:
    """Train with trl's KTO; return the summary that is also saved as ``cai_train.json``."""
    started = time.time()
    raw = common.load_data(cfg)
    rows, made = unpaired(raw, cfg)
    print(f"KTO rows: {made['desirable']} desirable, {made['undesirable']} undesirable "
          f"({made['source']})")  # fmt: skip
    data = _dataset(rows)
    evaluation = None
    if cfg.eval_split:  # the held-out split, made into KTO rows the same way
        evaluation = _dataset(unpaired(common.load_data(cfg, split=cfg.eval_split), cfg)[0])
    args = common.trl_config("kto", cfg)
    model, tok = models.load_causal_lm(cfg.model, cfg.trust_remote_code)
    trainer, held = common.fit("kto", cfg, args, model, tok, data, evaluation)
    extra = {
        "reward_margins": common.log_series(trainer, "rewards/margins"),
        "rewards_chosen": common.log_series(trainer, "rewards/chosen"),
        "rewards_rejected": common.log_series(trainer, "rewards/rejected"),
        "kl": common.log_series(trainer, "kl"),
        "beta": args.beta,
        **held,  # held-out rows: the chosen-minus-rejected reward margin
    }
    info = {"rows": len(data), **made, "provenance": common.data_provenance(raw)}
    return common.finish(trainer, cfg, "kto", started, info, extra)
