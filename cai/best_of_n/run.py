"""``cai best-of-n``: rejection sampling, the stage of Llama 2 between SFT and RL.

For each prompt the policy samples ``n`` responses; the reward (a reward model, the judge,
or a combination) scores them; the best one becomes an SFT row. Output columns: ``prompt``
(messages), ``completion`` (the best response as a one-message list), ``messages``,
``reward`` (its score), ``candidates`` and ``rewards`` (every sample and its score) and
``provenance``. The run is chunked and resumable like ``generate-revisions``.
"""

from __future__ import annotations

import hashlib
import json

from cai import __version__, progress
from cai.config import BestOfNConfig
from cai.data import (
    DatasetCard,
    PromptRow,
    markdown_table,
    push_to_hub,
    read_prompts,
    split_rows,
    write_dataset,
)
from cai.jobs import finish_run, output_lock, run_chunks
from cai.judge import build_reward
from cai.scorers import RewardFn


def run_best_of_n(cfg: BestOfNConfig, reward_fn: RewardFn | None = None, backend=None) -> dict:
    """Sample ``n`` answers per prompt, keep the best by reward; write the dataset.

    The output folder is locked for the whole run (``cai.jobs.chunks.output_lock``).
    """
    with output_lock(cfg.output):
        return _run_best_of_n(cfg, reward_fn, backend)


def _run_best_of_n(cfg: BestOfNConfig, reward_fn: RewardFn | None, backend) -> dict:
    rows, rejects = read_prompts(cfg.prompts, split=cfg.split, limit=cfg.limit)
    policy = backend or cfg.policy.create()
    reward = reward_fn or build_reward(
        cfg.rewards, cfg.policy.model, cfg.combine, cfg.safety_threshold, cfg.unsafe_column
    )
    params = cfg.sampling.params(n=cfg.n)
    provenance = {
        "cai_version": __version__,
        "policy": cfg.policy.model,
        "sampling": params.to_dict(),
        "n": cfg.n,
        "rewards": [s.model_dump() for s in cfg.rewards],
        "combine": cfg.combine,
        "reward_name": getattr(reward, "__name__", type(reward).__name__),
    }

    def process(chunk: list[PromptRow]) -> list[dict]:
        progress.stage("samples")
        outs = policy.generate([r.conversation for r in chunk], params)
        progress.stage("rewards")
        out = []
        for row, gens in zip(chunk, outs):
            texts = [g.text.strip() for g in gens]
            extra = {k: [v] * len(texts) for k, v in row.extra.items()}
            scores = reward([row.conversation] * len(texts), texts, **extra)
            best = max(range(len(texts)), key=lambda i: scores[i])
            answer = [{"role": "assistant", "content": texts[best]}]
            out.append(
                {
                    "id": row.id,
                    "prompt": row.conversation,
                    "completion": answer,
                    "messages": row.conversation + answer,
                    "reward": float(scores[best]),
                    "candidates": texts,
                    "rewards": [float(s) for s in scores],
                    "provenance": provenance,
                }
            )
        return out

    fingerprint = hashlib.sha256(
        json.dumps([provenance, cfg.model_dump(mode="json")], sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    result = run_chunks(
        rows,
        process,
        cfg.output,
        fingerprint=fingerprint,
        settings=cfg.model_dump(mode="json"),
        chunk_size=cfg.chunk_size,
        desc="best-of-n",
    )
    best = [r["reward"] for r in result.rows]
    mean_all = [sum(r["rewards"]) / len(r["rewards"]) for r in result.rows]
    summary = {
        "rows": len(result.rows),
        "rejected_rows": len(rejects),
        "seconds": round(result.seconds, 2),
        "mean_best_reward": round(sum(best) / len(best), 4),
        "mean_sample_reward": round(sum(mean_all) / len(mean_all), 4),
        "resumed_rows": result.resumed,
    }
    card = DatasetCard(
        title=f"Best-of-{cfg.n} samples of {cfg.policy.model}",
        summary=(
            f"Rejection sampling with `cai best-of-n` (cai {__version__}): {cfg.n} samples per "
            f"prompt from `{cfg.policy.model}`, the highest-reward one kept as an SFT row "
            "(`prompt`/`completion`, or `messages`)."
        ),
        sections={
            "Settings": markdown_table(
                ["setting", "value"], [[k, v] for k, v in provenance.items()]
            ),
            "Rewards": markdown_table(["metric", "value"], [[k, v] for k, v in summary.items()]),
        },
        tags=["cai", "rejection-sampling", "best-of-n", "sft"],
    )
    splits = split_rows(result.rows, test_size=cfg.test_size, seed=cfg.sampling.seed)
    write_dataset(cfg.output, splits, card)
    finish_run(cfg.output, rejects, summary)
    if cfg.push_to_hub:
        summary["hub"] = push_to_hub(cfg.output, cfg.push_to_hub, private=cfg.private)
    return summary
