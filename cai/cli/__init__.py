"""The ``cai`` command line: wiring only. Each command parses, loads, calls one function.

The command groups live in their own modules and are joined here, explicitly.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from cai import __version__
from cai.cli import constitution, evaluate, judge, models, pipeline, prompts, revisions, train
from cai.errors import CaiError

app = typer.Typer(
    help=(
        "Constitutional AI and RL from AI feedback.\n\n"
        "Constitutions are YAML data (`cai constitution list`); prompts are Jinja2 templates "
        "(`cai prompts list`); models resolve offline (`cai models list`). "
        "Add --debug (or set CAI_DEBUG=1) to see tracebacks."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(constitution.app, name="constitution")
app.add_typer(prompts.app, name="prompts")
app.add_typer(models.app, name="models")
app.command("generate-revisions")(revisions.generate_revisions)
app.command("merge")(revisions.merge)
app.add_typer(judge.app, name="judge")
app.add_typer(train.app, name="train")
app.command("best-of-n")(train.best_of_n)
app.command("export")(train.export)
app.command("evaluate")(evaluate.evaluate)
app.add_typer(pipeline.app, name="pipeline")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cai {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Constitutional AI and RL from AI feedback (``main`` handles --debug)."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: a ``CaiError`` becomes one red line and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="cai", standalone_mode=True)
    except CaiError as e:
        if os.environ.get("CAI_DEBUG") or "--debug" in args:
            raise
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
