"""``cai train sft``: supervised fine-tuning on critiqued-and-revised answers.

Input columns: ``prompt`` (chat messages) and ``completion`` (a one-message assistant list),
as ``cai generate-revisions`` writes them; or ``messages`` (a whole conversation whose last
turn is the assistant's). trl puts the loss on the completion only, so the model learns the
revision and not the red-team prompt. Example row::

    {"prompt": [{"role": "user", "content": "How do I pick a lock?"}],
     "completion": [{"role": "assistant", "content": "If you are locked out, ..."}]}

``mix`` adds rows of other datasets (``helpful-sft.jsonl:0.5`` adds half as many rows as
the main dataset has), as the open CAI recipe mixes in helpful data so that the model does
not learn to refuse everything.
"""

from __future__ import annotations

import time

from cai import models
from cai.errors import CaiError
from cai.train import common
from cai.train.config import SFTRunConfig

HINT = (
    "SFT needs prompt and completion (chat-message lists, as generate-revisions writes) "
    "or a messages column"
)


def to_prompt_completion(ds, dataset: str):
    """Keep ``prompt``/``completion``; split a ``messages`` column at its last turn."""
    if "prompt" in ds.column_names and "completion" in ds.column_names:
        return ds.select_columns(["prompt", "completion"])
    common.require_columns(ds, ["messages"], dataset, HINT)

    def split(row: dict) -> dict:
        msgs = row["messages"]
        if not msgs or msgs[-1]["role"] != "assistant":
            raise CaiError(f"{dataset}: a messages row must end with an assistant turn")
        return {"prompt": msgs[:-1], "completion": msgs[-1:]}

    return ds.map(split, remove_columns=ds.column_names)


def parse_mix(spec: str) -> tuple[str, float]:
    source, sep, fraction = spec.rpartition(":")
    try:
        value = float(fraction)
    except ValueError:
        value = -1.0
    if not sep or not source or value <= 0:
        raise CaiError(f"mix {spec!r}: give DATASET:FRACTION with a fraction above 0")
    return source, value


def build_dataset(cfg: SFTRunConfig):
    """The training set (the main data plus each ``mix`` source's share, shuffled by seed)
    and a description of it."""
    from datasets import concatenate_datasets

    from cai.data import read_table

    raw = common.load_data(cfg)
    main = to_prompt_completion(raw, cfg.dataset)
    parts, counts = [main], {cfg.dataset: len(main)}
    for spec in cfg.mix:
        source, fraction = parse_mix(spec)
        extra = to_prompt_completion(read_table(source)[0], source)
        want = round(fraction * len(main))
        if want > len(extra):
            print(f"mix {source}: asked for {want} rows, it has {len(extra)}; using all")
        take = extra.shuffle(seed=cfg.seed).select(range(min(want, len(extra))))
        parts.append(take.cast(main.features))
        counts[source] = len(take)
    data = concatenate_datasets(parts)
    data = data.shuffle(seed=cfg.seed) if len(parts) > 1 else data
    return data, {"rows": len(data), "sources": counts, "provenance": common.data_provenance(raw)}


def train_sft(cfg: SFTRunConfig) -> dict:
    """Train; return the summary that is also saved as ``cai_train.json``."""
    started = time.time()
    data, info = build_dataset(cfg)
    model, tok = models.load_causal_lm(cfg.model, cfg.trust_remote_code)
    args = common.trl_config("sft", cfg)
    trainer = common.trl_class("sft", "trainer")(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=data,
        peft_config=common.peft_config(cfg.lora),
    )
    common.train(trainer, cfg)
    return common.finish(trainer, cfg, "sft", started, info, {})
