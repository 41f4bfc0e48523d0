"""`cai models ...`: list, prepare and try the offline models."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cai.errors import CaiError
from cai.models import DEFAULT_MODEL

app = typer.Typer(help="List, prepare and try the offline models.", no_args_is_help=True)


@app.command("list")
def models_list() -> None:
    """List the packaged model names, whether each is converted, and how to install it."""
    from cai.models import model_status

    for row in model_status():
        state = "ready" if row["cached"] else "not converted yet"
        typer.echo(f"{row['name']:<20} {state:<18} {row['description']}")
        if not row["cached"]:
            typer.echo(f"{'':<20} needs: {row['install']}")
        if row["generation_defaults"]:
            shown = ", ".join(f"{k} {v}" for k, v in row["generation_defaults"].items())
            typer.echo(f"{'':<20} generation defaults: {shown}")


@app.command("prepare")
def models_prepare(
    names: Annotated[list[str], typer.Argument(help="Packaged model names.")],
) -> None:
    """Convert packaged models into the cache now (otherwise it happens on first use)."""
    from cai.models import PACKAGED, prepare_packaged

    for name in names:
        if name not in PACKAGED:
            raise CaiError(f"{name!r} is not a packaged model; choose from {', '.join(PACKAGED)}")
        typer.echo(f"{name}: {prepare_packaged(name)}")


@app.command("chat")
def models_chat(
    prompt: Annotated[str, typer.Argument(help="The user message.")],
    model: Annotated[str, typer.Option(help="Model name, folder or Hub id.")] = DEFAULT_MODEL,
    backend: Annotated[str, typer.Option(help="transformers or openai.")] = "transformers",
    base_url: Annotated[list[str] | None, typer.Option(help="openai: server base URL(s).")] = None,
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
    ).params(model=cfg.model, backend=cfg.backend)
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
