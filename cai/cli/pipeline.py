"""`cai pipeline`: wiring only; the work is in cai.pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cai.cli.common import Opt

app = typer.Typer(
    help=(
        "The whole method from one recipe: revisions, SFT, AI feedback, reward model, "
        "DPO, iterative rounds of sample-judge-optimise (rounds: N), PPO/GRPO and "
        "evaluation. Stages whose inputs did not change are skipped; an interrupted run "
        "resumes inside the stage it was in. See recipes/ and cai/pipeline/recipe.py."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)

Recipe = Annotated[Path, typer.Argument(help="The recipe YAML (e.g. recipes/smollm2-cai.yaml).")]


@app.command("run")
def run(
    recipe: Recipe,
    push_to_hub: Annotated[
        str | None,
        Opt(help="Push the datasets and the final model to this Hub user or org, cross-linked."),
    ] = None,
    private: Annotated[bool, Opt(help="Make the pushed repos private.")] = False,
    dry_run_push: Annotated[
        bool, Opt(help="With --push-to-hub: print what would be pushed, send nothing.")
    ] = False,
) -> None:
    """Run every stage of RECIPE that is not already done, then write the report."""
    from cai.pipeline.hub import push_all
    from cai.pipeline.recipe import load_recipe
    from cai.pipeline.run import run_pipeline

    r = load_recipe(recipe)
    result = run_pipeline(r, str(recipe), log=typer.echo)
    typer.echo(f"ran: {', '.join(result['ran']) or 'nothing'}; skipped: "
               f"{', '.join(result['skipped']) or 'nothing'}")  # fmt: skip
    typer.echo(f"report: {result['report'] / 'README.md'}")
    if push_to_hub:
        for plan in push_all(r, push_to_hub, private=private, dry_run=dry_run_push):
            where = plan.get("url") or "(dry run)"
            typer.echo(f"pushed {plan['repo_id']}: {len(plan['files'])} files {where}")


@app.command("status")
def status(recipe: Recipe) -> None:
    """Each stage: done (a rerun skips it), stale, partial or pending, with its folder."""
    from cai.pipeline.recipe import load_recipe
    from cai.pipeline.run import status_lines

    for line in status_lines(load_recipe(recipe), str(recipe)):
        typer.echo(line)
