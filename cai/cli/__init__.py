"""The ``cai`` command line: wiring only. Each command parses, loads, calls one function.

The command groups live in their own modules and are joined here, explicitly.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from typing import Annotated, Any

import typer

from cai import __version__
from cai.cli import (
    best_of_n,
    constitution,
    evaluate,
    judge,
    models,
    pipeline,
    prompts,
    quality,
    revisions,
    train,
)
from cai.cli.options import parse_only
from cai.config import CaiConfig
from cai.errors import CaiError

__all__ = ["app", "config_from_argv", "low_level_message", "main"]

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
app.command("quality")(quality.quality)
app.add_typer(judge.app, name="judge")
app.add_typer(train.app, name="train")
app.command("best-of-n")(best_of_n.best_of_n)
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
    """Console entry point: a ``CaiError`` becomes one red line and exit code 2.

    So do the low-level failures a user can act on (a full disk, a read-only folder, an
    output path under a file, bad text, input nested too deeply, memory running out): see
    ``low_level_message``. ``--debug`` or ``CAI_DEBUG=1`` re-raises, for the traceback.
    """
    args = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="cai", standalone_mode=True)
    except (CaiError, OSError, UnicodeError, RecursionError, MemoryError) as e:
        message = str(e) if isinstance(e, CaiError) else low_level_message(e)
        if message is None or os.environ.get("CAI_DEBUG") or "--debug" in args:
            raise
        typer.secho(f"error: {message}", fg="red", err=True)
        sys.exit(2)


@functools.cache
def _command() -> Any:
    """The click command tree, built once (for `config_from_argv`)."""
    return typer.main.get_command(app)


def config_from_argv(argv: list[str]) -> CaiConfig:
    """The config that ``cai ARGV...`` would run with, built by the command's own flags,
    ``--config`` and ``--set``, without running anything (click's usage errors and
    ``CaiError`` propagate)."""
    with parse_only() as captured:
        _command().main(args=[str(a) for a in argv], prog_name="cai", standalone_mode=False)
    if not captured:
        raise CaiError(f"cai {' '.join(argv)}: not a command with a config")
    return captured[-1]


def low_level_message(e: BaseException) -> str | None:
    """One line saying what went wrong and what to do, or None for an OSError without errno."""
    if isinstance(e, OSError):
        if e.errno is None:
            return None
        named = _path_of(e)
        path = named or "a file"
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            full = f"disk full: {named}" if named else "disk full"
            return f"{full}; free space and rerun - finished rows are kept"
        if e.errno == errno.EROFS:
            return f"{path} is read-only (a read-only file system); choose a writable path"
        if e.errno in (errno.EACCES, errno.EPERM):
            return (
                f"{path} is not writable (permission denied); fix its permissions or choose "
                "another path"
            )
        if e.errno == errno.ENOTDIR:
            return f"{path}: part of this path is a file, not a folder; choose another path"
        if e.errno == errno.EEXIST:
            return (
                f"{path} already exists and is in the way (a file where a folder should be?); "
                "remove it or choose another path"
            )
        if e.errno == errno.EISDIR:
            return f"{path} is a folder, not a file; give a file path"
        if e.errno == errno.ENOENT:
            return f"{path} does not exist; check the path"
        return f"{path}: {e.strerror or e}; rerun with --debug for the traceback"
    if isinstance(e, UnicodeError):
        return (
            f"invalid text ({e}); save input files as UTF-8 and remove lone surrogates "
            "(\\ud800-\\udfff)"
        )
    if isinstance(e, RecursionError):
        return "data nested too deeply to process; flatten the input"
    if isinstance(e, MemoryError):
        return "out of memory; use fewer rows at a time (a smaller --chunk-size or --batch-size)"
    return None


def _path_of(e: OSError) -> str | None:
    """The path an OSError names (both of a rename's), if any."""
    names = [os.fsdecode(n) for n in (e.filename, e.filename2) if isinstance(n, (str, bytes))]
    return " -> ".join(names) or None
