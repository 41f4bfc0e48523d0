"""The ``cai`` command line: wiring only. Each command parses, loads, calls one function."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cai import __version__
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
constitution_app = typer.Typer(
    help="List, show, validate and import constitutions (YAML principles).", no_args_is_help=True
)
prompts_app = typer.Typer(
    help="List and preview the Jinja2 prompt templates.", no_args_is_help=True
)
models_app = typer.Typer(help="List, prepare and try the offline models.", no_args_is_help=True)
app.add_typer(constitution_app, name="constitution")
app.add_typer(prompts_app, name="prompts")
app.add_typer(models_app, name="models")

PromptsDir = Annotated[
    Path | None,
    typer.Option(
        "--prompts-dir", help="A folder whose *.j2 files override shipped templates by name."
    ),
]


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


# ----------------------------------------------------------------- constitution


@constitution_app.command("list")
def constitution_list() -> None:
    """List the shipped constitutions with their principle counts and content hashes."""
    from cai.constitution import load_constitution, shipped_constitutions

    for name in shipped_constitutions():
        c = load_constitution(name)
        typer.echo(
            f"{name:<16} v{c.version:<6} {len(c.principles):>3} principles  {c.content_hash[:12]}"
        )


@constitution_app.command("show")
def constitution_show(
    name: Annotated[str, typer.Argument(help="A shipped name (see `list`) or a YAML path.")],
) -> None:
    """Print a constitution's principles, comparison questions and examples."""
    from cai.constitution import load_constitution

    c = load_constitution(name)
    typer.echo(f"{c.name} v{c.version}  sha256:{c.content_hash[:12]}\n{c.description}".rstrip())
    if c.system_prompt:
        typer.echo(f"\nsystem prompt: {c.system_prompt}")
    for i, p in enumerate(c.principles):
        tags = f"  [{', '.join(p.tags)}]" if p.tags else ""
        typer.echo(f"\n#{i} {p.id} (weight {p.weight}){tags}")
        typer.echo(f"  critique:   {p.critique}")
        typer.echo(f"  revision:   {p.revision}")
        if p.comparison:
            typer.echo(f"  comparison: {p.comparison}")
    if c.comparisons:
        typer.echo("\ncomparisons:")
        for q in c.comparisons:
            typer.echo(f"  - {q}")
    typer.echo(f"\n{len(c.examples)} few-shot example(s)")


@constitution_app.command("validate")
def constitution_validate(
    paths: Annotated[list[Path], typer.Argument(help="YAML files to check.")],
) -> None:
    """Check constitution files; print one line per file and exit non-zero on any error."""
    from cai.constitution import load_constitution

    failed = 0
    for path in paths:
        try:
            c = load_constitution(path)
        except CaiError as e:
            failed += 1
            typer.secho(f"error: {e}", fg="red", err=True)
            continue
        typer.echo(f"ok: {path} ({len(c.principles)} principles, sha256:{c.content_hash[:12]})")
    if failed:
        raise typer.Exit(1)


@constitution_app.command("import")
def constitution_import(
    paths: Annotated[list[Path], typer.Argument(help="The source JSON files.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="anthropic: the CAI paper's CritiqueRevisionInstructions.json, plus optionally "
            "RLMadisonInstructions.json (judge questions) and CritiqueRevisionFewShotPrompts.json. "
            "llm-swarm: files with {constitutions, system_chat}.",
        ),
    ],
    out: Annotated[Path, typer.Option("-o", "--output", help="The YAML file to write.")],
    name: Annotated[
        str | None, typer.Option(help="Constitution name; default: output stem.")
    ] = None,
) -> None:
    """Convert the CAI paper's or llm-swarm's JSON files into a cai YAML constitution."""
    from cai.constitution import parse_constitution
    from cai.constitution_import import import_files, to_yaml
    from cai.files import write_text_atomic

    if fmt not in ("anthropic", "llm-swarm"):
        raise CaiError(f"--format must be anthropic or llm-swarm, not {fmt!r}")
    c = import_files(list(paths), fmt, name or out.stem)  # type: ignore[arg-type]
    text = to_yaml(c)
    parse_constitution(text, str(out))  # never write a file that would not validate
    write_text_atomic(out, text)
    typer.echo(
        f"wrote {out}: {len(c.principles)} principles, {len(c.comparisons)} comparisons, "
        f"{len(c.examples)} examples"
    )


# ----------------------------------------------------------------- prompts


@prompts_app.command("list")
def prompts_list(prompts_dir: PromptsDir = None) -> None:
    """List the templates, marking those overridden by --prompts-dir."""
    from cai.prompts import SUFFIX, template_names

    for n in template_names(prompts_dir):
        mark = " (override)" if prompts_dir and (prompts_dir / f"{n}{SUFFIX}").is_file() else ""
        typer.echo(n + mark)


@prompts_app.command("render")
def prompts_render(
    name: Annotated[str, typer.Argument(help="Template name: critique, revision, compare, ...")],
    constitution: Annotated[str, typer.Option(help="Constitution name or path.")] = "harmless",
    principle: Annotated[
        str | None, typer.Option(help="Principle id; default: the first.")
    ] = None,
    prompts_dir: PromptsDir = None,
) -> None:
    """Show what a template produces, filled with a sample conversation and candidates."""
    from cai.constitution import load_constitution
    from cai.prompts import example_context, render

    c = load_constitution(constitution)
    ctx = example_context(c, c.principle(principle) if principle else None)
    typer.echo(render(name, prompts_dir, **ctx))


# ----------------------------------------------------------------- models


@models_app.command("list")
def models_list() -> None:
    """List the packaged model names, whether each is converted, and how to install it."""
    from cai.models import model_status

    for row in model_status():
        state = "ready" if row["cached"] else "not converted yet"
        typer.echo(f"{row['name']:<20} {state:<18} {row['description']}")
        if not row["cached"]:
            typer.echo(f"{'':<20} needs: {row['install']}")


@models_app.command("prepare")
def models_prepare(
    names: Annotated[list[str], typer.Argument(help="Packaged model names.")],
) -> None:
    """Convert packaged models into the cache now (otherwise it happens on first use)."""
    from cai.models import PACKAGED, prepare_packaged

    for name in names:
        if name not in PACKAGED:
            raise CaiError(f"{name!r} is not a packaged model; choose from {', '.join(PACKAGED)}")
        typer.echo(f"{name}: {prepare_packaged(name)}")


@models_app.command("chat")
def models_chat(
    prompt: Annotated[str, typer.Argument(help="The user message.")],
    model: Annotated[str, typer.Option(help="Model name, folder or Hub id.")] = "smollm2-135m",
    backend: Annotated[str, typer.Option(help="transformers or openai.")] = "transformers",
    base_url: Annotated[
        list[str] | None, typer.Option(help="openai: server base URL(s).")
    ] = None,
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 128,
    temperature: Annotated[float, typer.Option(help="0 for greedy.")] = 0.7,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print text, tokens and finish reason as JSON.")
    ] = False,
) -> None:
    """Answer one chat prompt: a quick check that a model loads and generates."""
    from cai.config import BackendConfig, SamplingConfig, load_config

    cfg = load_config(
        BackendConfig, None, {"backend": backend, "model": model, "base_url": base_url}
    )
    params = SamplingConfig(
        max_new_tokens=max_new_tokens, temperature=temperature, seed=seed
    ).params()
    conv = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    gen = cfg.create().generate([conv], params)[0][0]
    if as_json:
        typer.echo(
            json.dumps(
                {"text": gen.text, "num_tokens": gen.num_tokens, "finish_reason": gen.finish_reason}
            )
        )
    else:
        typer.echo(gen.text)
        typer.secho(f"[{gen.num_tokens} tokens, finish: {gen.finish_reason}]", dim=True, err=True)


# ----------------------------------------------------------------- entry point


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
