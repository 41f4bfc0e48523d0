"""``cai generate-revisions`` as a batch job: read, revise in chunks, write, describe, push."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from cai import progress
from cai.config import ReviseConfig
from cai.constitution import load_constitution
from cai.data import DatasetCard, PromptRow, Reject, markdown_table, read_prompts
from cai.jobs import BatchJob, GenerationCache, JobResult, select_shard
from cai.models import generation_defaults
from cai.resources import cache_dir
from cai.revise.loop import Reviser, principle_stats


def build_reviser(cfg: ReviseConfig, backend=None, only: str | None = None) -> Reviser:
    """The ``Reviser`` a config describes (``backend`` may be given to reuse one; ``only``
    uses that one principle instead of sampling, as ``cai constitution try --principle``)."""
    cache = GenerationCache(
        None if cfg.no_cache else (cfg.cache or cache_dir() / "generations.sqlite")
    )
    return Reviser(
        backend=backend or cfg.backend.create(),
        constitution=load_constitution(cfg.constitution),
        params=cfg.sampling.params(model=cfg.backend.model, backend=cfg.backend.backend),
        rounds=cfg.rounds,
        principles=cfg.principles,
        few_shot=revise_setting(cfg, "few_shot"),
        few_shot_examples=cfg.few_shot_examples,
        critique_temperature=revise_setting(cfg, "critique_temperature"),
        revision_temperature=revise_setting(cfg, "revision_temperature"),
        skip_unneeded=cfg.skip_unneeded,
        prompts_dir=cfg.prompts_dir,
        only=only,
        cache=cache,
    )


def revise_setting(cfg: ReviseConfig, field: str):
    """A generate-revisions setting as resolved: given (command line or YAML), else the
    model registry's (``cai.models.GENERATION_DEFAULTS``), else the field's default. A
    given ``temperature`` holds for every stage, so then the registry's stage
    temperatures are not used."""
    value = getattr(cfg, field)
    if field in cfg.model_fields_set:
        return value
    if field.endswith("_temperature") and "temperature" in cfg.sampling.model_fields_set:
        return value
    return generation_defaults(cfg.backend.model).get(field, value)


def load_rows(cfg: ReviseConfig) -> tuple[list[PromptRow], list[Reject]]:
    rows, rejects = read_prompts(
        cfg.prompts, split=cfg.split, prompt_column=cfg.prompt_column, limit=cfg.limit
    )
    return select_shard(rows, cfg.num_shards, cfg.shard_index), rejects


def generations_per_row(cfg: ReviseConfig, reviser: Reviser) -> int:
    rounds = len(reviser.constitution.principles) if cfg.principles == "all" else cfg.rounds
    return 1 + 2 * rounds


def dry_run(cfg: ReviseConfig, warmup_rows: int = 4) -> dict:
    """How many rows and generations a run needs, timed from a short warm-up."""
    rows, rejects = load_rows(cfg)
    reviser = build_reviser(cfg.model_copy(update={"no_cache": True}))
    rows, too_long = reviser.check_context(rows)
    gens = len(rows) * generations_per_row(cfg, reviser)
    sample = rows[:warmup_rows]
    start = time.perf_counter()
    outs = reviser.backend.generate(
        [reviser.system + r.conversation for r in sample], reviser.params
    )
    elapsed = time.perf_counter() - start
    tokens = sum(o[0].num_tokens for o in outs)
    tok_s = tokens / elapsed if elapsed > 0 else 0.0
    est_tokens = gens * (tokens / max(1, len(sample)))
    return {
        "rows": len(rows),
        "rejected": len(rejects) + len(too_long),
        "generations": gens,
        "warmup_tokens_per_s": round(tok_s, 1),
        "estimated_tokens": int(est_tokens),
        "estimated_seconds": round(est_tokens / tok_s, 0) if tok_s else None,
        "note": "the warm-up runs at batch size <= 4; full batches are faster",
    }


def run_revisions(cfg: ReviseConfig, backend=None) -> dict:
    """Run the whole job (``cai.jobs.BatchJob``); return the summary that is also stored
    in ``run.json``.

    Before any model loads: the output must be a folder that does not overlap the input,
    an unfinished cai input is refused (unless ``allow_partial``), and the output folder
    is locked against a second run for the whole job."""
    return RevisionsJob(cfg, backend).run()


class RevisionsJob(BatchJob):
    """``generate-revisions``'s own parts of the batch job: the reviser and its summary."""

    desc = "revisions"

    def __init__(self, cfg: ReviseConfig, backend=None) -> None:
        super().__init__(cfg)
        self.backend = backend
        self.reviser: Reviser | None = None
        self.prov: dict = {}
        self.records: list[dict] = []

    def read(self) -> tuple[list[PromptRow], list[Reject]]:
        cfg = self.cfg
        return read_prompts(
            cfg.prompts, split=cfg.split, prompt_column=cfg.prompt_column, limit=cfg.limit
        )

    def prepare(self, rows: list[PromptRow]) -> tuple[list[PromptRow], list[Reject]]:
        cfg = self.cfg
        if cfg.quality or cfg.quality_gate:  # a missing reference fails now, not at the end
            from cai.quality import Scorers

            Scorers.load(cfg.quality_reference)
        self.reviser = build_reviser(cfg, self.backend)
        return self.reviser.check_context(rows)

    def provenance(self) -> dict:
        self.prov = self.reviser.provenance()
        return self.prov

    def process(self, chunk: list[PromptRow]) -> list[dict]:
        return self.reviser.revise(chunk, self.prov)

    def tokens(self) -> int:
        return sum(s.generated_tokens for s in self.reviser.stats.values())

    def summary(self, result: JobResult, rejects: list[Reject]) -> dict:
        reviser = self.reviser
        gen_tokens = self.tokens()
        return {
            **super().summary(result, rejects),
            "reject_reasons": dict(Counter(r.reason.split(":")[0] for r in rejects)),
            "generated_tokens": gen_tokens,
            "tokens_per_second": round(gen_tokens / result.seconds, 2) if result.seconds else 0.0,
            "stages": {k: vars(v) for k, v in reviser.stats.items()},
            "principles": principle_stats(result.rows),
            "no_change_rate": _rate(result.rows),
            **self.assess_quality(result.rows),
        }

    def assess_quality(self, rows: list[dict]) -> dict:
        """The quality report of every row (``cai.quality``), before any gate; each row
        gets its own record as a ``quality`` column."""
        cfg = self.cfg
        if not (cfg.quality or cfg.quality_gate):
            return {}
        from cai.quality import Scorers, assess, example_texts

        progress.stage("quality")
        self.records, report = assess(
            rows, Scorers.load(cfg.quality_reference), example_texts(self.reviser.constitution)
        )
        for row, rec in zip(rows, self.records):
            row["quality"] = {k: v for k, v in rec.items() if k not in ("id", "principles")}
        return {"quality": report}

    def gate(self, rows: list[dict], summary: dict) -> tuple[list[dict], list[Reject]]:
        if not self.cfg.quality_gate:
            return rows, []
        from cai.quality import check_targets, gate

        kept, dropped = gate(rows, self.records)
        q = summary["quality"]
        q["kept_rows"] = len(kept)
        q["kept_share"] = round(len(kept) / len(rows), 3) if rows else None
        q["targets"] = check_targets(q)
        return kept, dropped

    def card(self, summary: dict) -> DatasetCard:
        return revision_card(self.cfg, self.reviser, self.prov, summary)

    def close(self) -> None:
        if self.reviser is not None:
            self.reviser.cache.close()


def _rate(rows: list[dict]) -> float:
    steps = [s for r in rows for s in r["trace"]["rounds"]]
    return round(sum(s["no_change_needed"] for s in steps) / len(steps), 3) if steps else 0.0


def revision_card(
    cfg: ReviseConfig, reviser: Reviser, provenance: dict, summary: dict
) -> DatasetCard:
    c = reviser.constitution
    stage_rows = [
        [name, s["requested"], s["cached"], s["generated_tokens"], round(s["seconds"], 1)]
        for name, s in summary["stages"].items()
    ]
    principle_rows = [
        [p["principle"], p["rounds"], p["no_change_rate"], p["mean_length_change"]]
        for p in summary["principles"]
    ]
    reasons = summary["reject_reasons"]
    sampling = provenance["sampling"]
    sampled = cfg.principles == "sample"
    rounds = cfg.rounds if sampled else "one round per principle of"
    return DatasetCard(
        title=f"CAI revisions: {c.name} constitution, {reviser.backend.model_name}",
        summary=(
            f"Critique-and-revision data made with `cai generate-revisions` (cai "
            f"{provenance['cai_version']}). Each of {summary['rows']} prompts got an initial "
            f"answer from `{reviser.backend.model_name}`, then {rounds} "
            f"critique-and-revision round(s) against the `{c.name}` constitution. "
            "`messages`/`completion` are for SFT (loss on the revision only); `chosen` "
            "(final revision) and `rejected` (initial answer) with `prompt` are for DPO and "
            "reward modelling. The full trace of every row is in `trace`."
        ),
        sections={
            "Constitution": (
                f"`{c.name}` version {c.version}, sha256 `{c.content_hash}`, "
                f"{len(c.principles)} principles; principles are "
                f"{'sampled per row (seeded)' if sampled else 'all applied in order'}; "
                f"few-shot examples: {'on' if reviser.few_shot else 'off'}."
            ),
            "Generation settings": markdown_table(
                ["setting", "value"],
                [
                    ["model", reviser.backend.model_name],
                    ["backend", reviser.backend.name],
                    *[[k, json.dumps(v)] for k, v in sampling.items()],
                    *[
                        [f"{stage} temperature", t]
                        for stage, t in provenance["stage_temperatures"].items()
                    ],
                    [
                        "worked examples",
                        reviser.few_shot_examples or "all" if reviser.few_shot else "none",
                    ],  # fmt: skip
                    ["rounds", cfg.rounds],
                    ["skip unneeded revisions", cfg.skip_unneeded],
                    ["input", cfg.prompts],
                ],
            ),
            "Per-principle statistics": markdown_table(
                ["principle", "rounds", "no-change rate", "mean length change (chars)"],
                principle_rows,
            ),
            **_quality_section(summary),
            "Skipped rows": (
                f"{summary['rejected_rows']} input rows were skipped "
                f"({', '.join(f'{k}: {v}' for k, v in reasons.items()) or 'none'}); "
                "each is listed with its reason in `rejects.jsonl` beside the data."
            ),
            "Throughput": (
                f"{summary['generated_tokens']} tokens generated in {summary['seconds']} s "
                f"({summary['tokens_per_second']} tok/s) by this invocation; "
                f"{summary['resumed_rows']} rows resumed from an earlier run.\n\n"
                + markdown_table(
                    ["stage", "requests", "cache hits", "generated tokens", "seconds"], stage_rows
                )
            ),
            "Provenance": (
                f"Every row's `provenance` column records the schema version "
                f"({provenance['schema_version']}), the cai version, the model, the backend, "
                f"the sampling settings, the seed ({provenance['seed']}), the constitution's "
                f"name, version and hash, and the template hashes "
                f"({', '.join(f'{k}: `{v[:12]}`' for k, v in provenance['templates'].items())})."
            ),
            "Use": (
                "```python\nfrom datasets import load_dataset\n"
                'ds = load_dataset("PATH_OR_REPO")\n'
                "# SFT: trl.SFTTrainer on columns prompt/completion\n"
                "# DPO: trl.DPOTrainer on columns prompt/chosen/rejected\n```"
            ),
        },
        tags=["constitutional-ai", "rlaif", "cai", "synthetic"],
        extra_yaml={
            "cai": {
                "constitution": c.name,
                "constitution_hash": c.content_hash,
                "model": reviser.backend.model_name,
                "seed": provenance["seed"],
            }
        },
    )


def _quality_section(summary: dict) -> dict[str, str]:
    if "quality" not in summary:
        return {}
    from cai.quality import report_markdown

    q = summary["quality"]
    return {"Quality": report_markdown(q, q.get("kept_rows"))}


def summary_lines(summary: dict, out_dir: Path) -> list[str]:
    """The short summary printed at the end of a run."""
    lines = [
        f"{summary['rows']} rows in {out_dir} ({summary['resumed_rows']} resumed, "
        f"{summary['processed_rows']} processed"
        + (f" of which {summary['changed_rows']} changed" if summary.get("changed_rows") else "")
        + f", {summary['rejected_rows']} skipped"
        + (" - see rejects.jsonl)" if summary["rejected_rows"] else ")"),
        f"{summary['generated_tokens']} tokens in {summary['seconds']} s = "
        f"{summary['tokens_per_second']} tok/s; critiques saying no change needed: "
        f"{summary['no_change_rate']:.0%}",
    ]
    for p in summary["principles"]:
        lines.append(
            f"  {p['principle']:<28} rounds {p['rounds']:>4}  no-change "
            f"{p['no_change_rate']:.0%}  length change {p['mean_length_change']:+.0f}"
        )
    if "quality" in summary:
        from cai.quality import report_lines

        lines += report_lines(summary["quality"], summary["quality"].get("kept_rows"))
    return lines
