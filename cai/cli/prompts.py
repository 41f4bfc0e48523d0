"""`cai prompts ...`: list and preview the Jinja2 templates."""

from __future__ import annotations

from typing import Annotated

import typer

from cai.cli.common import PromptsDir

app = typer.Typer(help="List and preview the Jinja2 prompt templates.", no_args_is_help=True)


@app.command("list")
def prompts_list(prompts_dir: PromptsDir = None) -> None:
    """List the templates, marking those overridden by --prompts-dir."""
    from cai.prompts import SUFFIX, template_names

    for n in template_names(prompts_dir):
        mark = " (override)" if prompts_dir and (prompts_dir / f"{n}{SUFFIX}").is_file() else ""
        typer.echo(n + mark)


@app.command("render")
def prompts_render(
    name: Annotated[str, typer.Argument(help="Template name: critique, revision, compare, ...")],
    constitution: Annotated[str, typer.Option(help="Constitution name or path.")] = "harmless",
    principle: Annotated[str | None, typer.Option(help="Principle id; default: the first.")] = None,
    prompts_dir: PromptsDir = None,
) -> None:
    """Show what a template produces, filled with a sample conversation and candidates."""
    from cai.constitution import load_constitution
    from cai.prompts import example_context, render

    c = load_constitution(constitution)
    ctx = example_context(c, c.principle(principle) if principle else None)
    typer.echo(render(name, prompts_dir, **ctx))
