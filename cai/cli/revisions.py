"""`cai generate-revisions` and `cai merge`: wiring only; the loop is cai.revise.loop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cai.cli.common import AllowPartial, Opt, PromptsDir


def generate_revisions(
    prompts: Annotated[
        str | None,
        Opt(
            help="Shipped set (red-team, helpful), a JSONL/JSON/CSV/Parquet file, "
            "a save_to_disk folder or a Hub id. [default: red-team]"
        ),
    ] = None,
    output: Annotated[
        Path | None, Opt("--output", "-o", help="Output folder. [default: out/revisions]")
    ] = None,
    constitution: Annotated[
        str | None, Opt(help="Constitution name or YAML path. [default: harmless]")
    ] = None,
    model: Annotated[
        str | None, Opt(help="Model name, folder or Hub id. [default: smollm2-135m]")
    ] = None,
    backend: Annotated[
        str | None, Opt(help="transformers, vllm or openai. [default: transformers]")
    ] = None,
    base_url: Annotated[
        list[str] | None, Opt(help="openai backend: server URL(s), repeat for several.")
    ] = None,
    batch_size: Annotated[
        int | None, Opt(help="transformers: rows per generate call. [default: 16]")
    ] = None,
    rounds: Annotated[
        int | None, Opt(help="Critique-and-revision rounds per prompt. [default: 1]")
    ] = None,
    principles: Annotated[
        str | None,
        Opt(help="sample (one per round, seeded per row) or all (one round per principle)."),
    ] = None,
    few_shot: Annotated[
        bool | None,
        Opt(
            "--few-shot/--no-few-shot", help="Use the constitution's worked examples. [default: on]"
        ),
    ] = None,
    skip_unneeded: Annotated[
        bool | None,
        Opt("--skip-unneeded", help="Skip revisions whose critique found nothing to change."),
    ] = None,
    max_new_tokens: Annotated[
        int | None, Opt(help="Most tokens per generation. [default: 256]")
    ] = None,
    temperature: Annotated[
        float | None, Opt(help="Sampling temperature; 0 is greedy. [default: 0.7]")
    ] = None,
    seed: Annotated[
        int | None, Opt(help="The run's seed: principles and sampling. [default: 0]")
    ] = None,
    limit: Annotated[int | None, Opt(help="Use only the first N input rows.")] = None,
    split: Annotated[str | None, Opt(help="Split of a Hub dataset or DatasetDict folder.")] = None,
    prompt_column: Annotated[
        str | None, Opt(help="Column holding the prompt (detected if omitted).")
    ] = None,
    test_size: Annotated[
        float | None, Opt(help="Held-out rows: a fraction in (0,1) or a count.")
    ] = None,
    split_scheme: Annotated[
        str | None,
        Opt(help="default (train/test) or cai-recipe (train_sft/test_sft/train_prefs/test_prefs)."),
    ] = None,
    chunk_size: Annotated[
        int | None, Opt(help="Rows per chunk; each finished chunk is saved. [default: 64]")
    ] = None,
    concurrent_chunks: Annotated[
        int | None,
        Opt(
            help="Chunks in flight at once (openai backend: e.g. --chunk-size 8 "
            "--concurrent-chunks 4 keeps the server busy between turns). [default: 1]"
        ),
    ] = None,
    num_shards: Annotated[
        int | None, Opt(help="Split the input into K deterministic shards.")
    ] = None,
    shard_index: Annotated[
        int | None, Opt(help="Which shard this run processes (0-based).")
    ] = None,
    cache: Annotated[
        Path | None, Opt(help="Generation cache file. [default: $CAI_CACHE/generations.sqlite]")
    ] = None,
    no_cache: Annotated[
        bool | None, Opt("--no-cache", help="Neither read nor write the generation cache.")
    ] = None,
    prompts_dir: PromptsDir = None,
    allow_partial: AllowPartial = None,
    push_to_hub: Annotated[
        str | None, Opt(help="Push the dataset to this Hub repo when done.")
    ] = None,
    private: Annotated[bool | None, Opt("--private", help="Make the Hub repo private.")] = None,
    config: Annotated[
        Path | None,
        Opt(
            help="A YAML file of settings (see cai/config.py ReviseConfig); the command line wins."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        Opt(
            "--dry-run",
            help="Print the rows and generations needed and an estimated time, then stop.",
        ),
    ] = False,
) -> None:
    """Critique and revise answers to red-team prompts against a constitution (SL-CAI).

    Each prompt gets an initial answer; then, per round, a sampled principle, a critique
    and a revision. The output folder holds an SFT and preference dataset (prompt,
    messages, completion, chosen, rejected, full trace, provenance), its card, and the
    rejected rows. Rerun the same command to resume; edited principles regenerate only
    the rows that used them.
    """
    from cai.config import ReviseConfig, load_config
    from cai.revise import dry_run as plan_run
    from cai.revise import run_revisions, summary_lines

    overrides = {
        "prompts": prompts,
        "output": output,
        "constitution": constitution,
        "rounds": rounds,
        "principles": principles,
        "few_shot": few_shot,
        "skip_unneeded": skip_unneeded,
        "limit": limit,
        "split": split,
        "prompt_column": prompt_column,
        "test_size": test_size,
        "split_scheme": split_scheme,
        "chunk_size": chunk_size,
        "concurrent_chunks": concurrent_chunks,
        "num_shards": num_shards,
        "shard_index": shard_index,
        "cache": cache,
        "no_cache": no_cache,
        "prompts_dir": prompts_dir,
        "allow_partial": allow_partial,
        "push_to_hub": push_to_hub,
        "private": private,
        "backend": {
            "model": model,
            "backend": backend,
            "base_url": base_url,
            "batch_size": batch_size,
        },
        "sampling": {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed},
    }
    cfg = load_config(ReviseConfig, config, overrides)
    if dry_run:
        for key, value in plan_run(cfg).items():
            typer.echo(f"{key}: {value}")
        return
    summary = run_revisions(cfg)
    for line in summary_lines(summary, cfg.output):
        typer.echo(line)


def merge(
    shards: Annotated[list[Path], typer.Argument(help="The output folders of every shard.")],
    output: Annotated[Path, Opt("--output", "-o", help="The merged output folder.")],
    allow_missing: Annotated[
        bool,
        Opt("--allow-missing", help="Merge even if some of the run's shards are not given."),
    ] = False,
) -> None:
    """Join the output folders of a sharded run; check every row is there exactly once."""
    import json

    from cai.jobs import merge_shards

    n = merge_shards(shards, output, allow_missing=allow_missing)
    missing = json.loads((output / "run.json").read_text()).get("missing_shards")
    note = f" (shard index(es) {', '.join(map(str, missing))} missing)" if missing else ""
    typer.echo(f"merged {n} rows from {len(shards)} shards into {output}{note}")
