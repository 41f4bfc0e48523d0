"""`cai generate-revisions` and `cai merge`: wiring only; the loop is cai.revise.loop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cai.cli.common import Opt
from cai.cli.options import ConfigFlags, config_command
from cai.config import ReviseConfig

REVISE = ConfigFlags(ReviseConfig, prefixes={"backend": "", "sampling": ""})
"""`generate-revisions`: a flag per field; the engine and sampling flags are unprefixed."""


@config_command(REVISE)
def generate_revisions(
    cfg: ReviseConfig,
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
    from cai.revise import dry_run as plan_run
    from cai.revise import run_revisions, summary_lines

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
