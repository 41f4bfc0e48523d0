"""`cai constitution ...`: list, show, validate, import and try constitutions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cai.cli.common import Opt, PromptsDir
from cai.errors import CaiError
from cai.models import DEFAULT_MODEL

app = typer.Typer(
    help="List, show, validate, import and try constitutions (YAML principles).",
    no_args_is_help=True,
)


@app.command("list")
def constitution_list() -> None:
    """List the shipped constitutions with their principle counts and content hashes."""
    from cai.constitution import load_constitution, shipped_constitutions

    for name in shipped_constitutions():
        c = load_constitution(name)
        typer.echo(
            f"{name:<16} v{c.version:<6} {len(c.principles):>3} principles  {c.content_hash[:12]}"
        )


@app.command("show")
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
        if p.pointwise:
            typer.echo(f"  pointwise:  {p.pointwise}")
        if p.contrast:
            typer.echo(f"  contrast:   follows: {p.contrast.follows}")
            typer.echo(f"              violates: {p.contrast.violates}")
    if c.comparisons:
        typer.echo("\ncomparisons:")
        for q in c.comparisons:
            typer.echo(f"  - {q}")
    if c.pointwise:
        typer.echo(f"\npointwise (default): {c.pointwise}")
    if c.contrast:
        typer.echo(f"\ncontrast (default): follows: {c.contrast.follows}")
        typer.echo(f"                    violates: {c.contrast.violates}")
    typer.echo(f"\n{len(c.examples)} few-shot example(s)")


@app.command("validate")
def constitution_validate(
    paths: Annotated[list[Path], typer.Argument(help="YAML files to check.")],
) -> None:
    """Check constitution files; print one line per file and exit 2 on any error."""
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
        raise typer.Exit(2)


@app.command("import")
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
    from cai._util import write_text_atomic
    from cai.constitution import import_files, parse_constitution, to_yaml

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


@app.command("try")
def constitution_try(
    name: Annotated[str, typer.Argument(help="Constitution name or YAML path.")],
    prompt: Annotated[str, Opt(help="The user prompt to run through the loop.")],
    model: Annotated[str, Opt(help="Model name, folder or Hub id.")] = DEFAULT_MODEL,
    principle: Annotated[str | None, Opt(help="Use this principle id instead of sampling.")] = None,
    rounds: Annotated[int, Opt(help="Rounds of critique and revision.")] = 1,
    few_shot: Annotated[
        bool | None,
        Opt(
            "--few-shot/--no-few-shot",
            help="Use worked examples (default: the model family's, see `cai models list`).",
        ),
    ] = None,
    max_new_tokens: Annotated[int, Opt(help="Most tokens per generation.")] = 200,
    seed: Annotated[int, Opt(help="Seed.")] = 0,
    prompts_dir: PromptsDir = None,
) -> None:
    """Run one prompt through critique and revision and print every step."""
    from cai.config import ReviseConfig
    from cai.constitution import load_constitution
    from cai.data import PromptRow
    from cai.revise import build_reviser

    if principle:
        load_constitution(name).principle(principle)  # fail early on an unknown id
    given = {"few_shot": few_shot} if few_shot is not None else {}  # else the model family's
    cfg = ReviseConfig(
        constitution=name,
        backend={"model": model},
        sampling={"max_new_tokens": max_new_tokens, "seed": seed},
        rounds=rounds,
        prompts_dir=prompts_dir,
        no_cache=True,
        **given,
    )
    reviser = build_reviser(cfg, only=principle)
    row = PromptRow(id="try", conversation=[{"role": "user", "content": prompt}], index=0, extra={})
    out = reviser.revise([row])[0]
    typer.secho("PROMPT", bold=True)
    typer.echo(prompt)
    typer.secho("\nINITIAL ANSWER", bold=True)
    typer.echo(out["initial_response"])
    for step in out["trace"]["rounds"]:
        typer.secho(f"\nROUND {step['round'] + 1}: principle {step['principle_id']}", bold=True)
        typer.secho(f"critique request: {step['critique_request']}", dim=True)
        typer.echo(step["critique"])
        flag = " (critique says no change needed)" if step["no_change_needed"] else ""
        typer.secho(f"\nREVISION{flag}", bold=True)
        typer.echo(step["revision"])
