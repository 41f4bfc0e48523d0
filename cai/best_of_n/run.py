"""``cai best-of-n``: rejection sampling, the stage of Llama 2 between SFT and RL.

For each prompt the policy samples ``n`` responses; the reward (a reward model, the judge,
or a combination) scores them; the best one becomes an SFT row. Output columns: ``prompt``
(messages), ``completion`` (the best response as a one-message list), ``messages``,
``reward`` (its score), ``candidates`` and ``rewards`` (every sample and its score) and
``provenance``. The run is chunked and resumable like ``generate-revisions``.
"""

from __future__ import annotations

from cai import __version__, progress
from cai.config import BestOfNConfig
from cai.data import DatasetCard, PromptRow, Reject, markdown_table, read_prompts
from cai.jobs import BatchJob, JobResult, provenance
from cai.judge import build_reward
from cai.scorers import RewardFn


def run_best_of_n(cfg: BestOfNConfig, reward_fn: RewardFn | None = None, backend=None) -> dict:
    """Sample ``n`` answers per prompt, keep the best by reward; write the dataset.

    Runs on the batch-job skeleton (``cai.jobs.BatchJob``): the output folder is checked
    against the input and locked for the whole run.
    """
    return BestOfNJob(cfg, reward_fn, backend).run()


class BestOfNJob(BatchJob):
    """Best-of-n's own parts of the batch job: sample, reward, keep the best."""

    desc = "best-of-n"
    allow_partial = True
    """``BestOfNConfig`` has no ``allow_partial``: an unfinished cai input is read, with a
    warning, as before the skeleton checked inputs."""

    def __init__(self, cfg: BestOfNConfig, reward_fn: RewardFn | None = None, backend=None):
        super().__init__(cfg)
        self.reward, self.policy = reward_fn, backend
        self.params = cfg.sampling.params(
            n=cfg.n, model=cfg.policy.model, backend=cfg.policy.backend
        )
        self.prov: dict = {}

    def read(self) -> tuple[list[PromptRow], list[Reject]]:
        return read_prompts(self.cfg.prompts, split=self.cfg.split, limit=self.cfg.limit)

    def prepare(self, rows: list[PromptRow]) -> tuple[list[PromptRow], list[Reject]]:
        cfg = self.cfg
        self.policy = self.policy or cfg.policy.create()
        self.reward = self.reward or build_reward(
            cfg.rewards, cfg.policy.model, cfg.combine, cfg.safety_threshold, cfg.unsafe_column
        )
        return rows, []

    def provenance(self) -> dict:
        cfg = self.cfg
        self.prov = provenance(
            policy=cfg.policy.model,
            sampling=self.params.to_dict(),
            n=cfg.n,
            rewards=[s.model_dump() for s in cfg.rewards],
            combine=cfg.combine,
            reward_name=getattr(self.reward, "__name__", type(self.reward).__name__),
        )
        return self.prov

    def process(self, chunk: list[PromptRow]) -> list[dict]:
        progress.stage("samples")
        outs = self.policy.generate([r.conversation for r in chunk], self.params)
        progress.stage("rewards")
        out = []
        for row, gens in zip(chunk, outs):
            texts = [g.text.strip() for g in gens]
            extra = {k: [v] * len(texts) for k, v in row.extra.items()}
            scores = self.reward([row.conversation] * len(texts), texts, **extra)
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
                    "provenance": self.prov,
                }
            )
        return out

    def summary(self, result: JobResult, rejects: list[Reject]) -> dict:
        best = [r["reward"] for r in result.rows]
        mean_all = [sum(r["rewards"]) / len(r["rewards"]) for r in result.rows]
        return {
            **super().summary(result, rejects),
            "mean_best_reward": round(sum(best) / len(best), 4),
            "mean_sample_reward": round(sum(mean_all) / len(mean_all), 4),
        }

    def card(self, summary: dict) -> DatasetCard:
        cfg = self.cfg
        return DatasetCard(
            title=f"Best-of-{cfg.n} samples of {cfg.policy.model}",
            summary=(
                f"Rejection sampling with `cai best-of-n` (cai {__version__}): {cfg.n} samples "
                f"per prompt from `{cfg.policy.model}`, the highest-reward one kept as an SFT "
                "row (`prompt`/`completion`, or `messages`)."
            ),
            sections={
                "Settings": markdown_table(
                    ["setting", "value"], [[k, v] for k, v in self.prov.items()]
                ),
                "Rewards": markdown_table(
                    ["metric", "value"], [[k, v] for k, v in summary.items()]
                ),
            },
            tags=["cai", "rejection-sampling", "best-of-n", "sft"],
        )
