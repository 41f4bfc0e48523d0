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
    principle: Annotated[str | None, typer.Option(help="Principle id; default: the first.")] = None,
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


# ----------------------------------------------------------------- generate-revisions

Opt = typer.Option


@app.command("generate-revisions")
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
        str | None, Opt(help="transformers or openai. [default: transformers]")
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
    from cai.revise_run import dry_run as plan_run
    from cai.revise_run import run_revisions, summary_lines

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
        "num_shards": num_shards,
        "shard_index": shard_index,
        "cache": cache,
        "no_cache": no_cache,
        "prompts_dir": prompts_dir,
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


@app.command("merge")
def merge(
    shards: Annotated[list[Path], typer.Argument(help="The output folders of every shard.")],
    output: Annotated[Path, Opt("--output", "-o", help="The merged output folder.")],
) -> None:
    """Join the output folders of a sharded run; check every row is there exactly once."""
    from cai.merge import merge_shards

    n = merge_shards(shards, output)
    typer.echo(f"merged {n} rows from {len(shards)} shards into {output}")


@constitution_app.command("try")
def constitution_try(
    name: Annotated[str, typer.Argument(help="Constitution name or YAML path.")],
    prompt: Annotated[str, Opt(help="The user prompt to run through the loop.")],
    model: Annotated[str, Opt(help="Model name, folder or Hub id.")] = "smollm2-135m",
    principle: Annotated[str | None, Opt(help="Use this principle id instead of sampling.")] = None,
    rounds: Annotated[int, Opt(help="Rounds of critique and revision.")] = 1,
    few_shot: Annotated[bool, Opt("--few-shot/--no-few-shot", help="Use worked examples.")] = True,
    max_new_tokens: Annotated[int, Opt(help="Most tokens per generation.")] = 200,
    seed: Annotated[int, Opt(help="Seed.")] = 0,
    prompts_dir: PromptsDir = None,
) -> None:
    """Run one prompt through critique and revision and print every step."""
    from cai.backends import load_backend
    from cai.config import SamplingConfig
    from cai.constitution import load_constitution
    from cai.data import PromptRow
    from cai.revise import Reviser

    c = load_constitution(name)
    if principle:
        c.principle(principle)  # fail early on an unknown id
    reviser = Reviser(
        backend=load_backend("transformers", model),
        constitution=c,
        params=SamplingConfig(max_new_tokens=max_new_tokens, seed=seed).params(),
        rounds=rounds,
        few_shot=few_shot,
        prompts_dir=prompts_dir,
        only=principle,
    )
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


# ----------------------------------------------------------------- judge

judge_app = typer.Typer(
    help="AI feedback: rank candidate responses against the constitution (RLAIF).",
    invoke_without_command=True,
)
app.add_typer(judge_app, name="judge")


@judge_app.callback()
def judge(
    ctx: typer.Context,
    prompts: Annotated[
        str | None,
        Opt(
            help="Prompts with candidates: a cai output folder (e.g. of "
            "generate-revisions), a file, a save_to_disk folder or a Hub id. "
            "[default: out/revisions]"
        ),
    ] = None,
    output: Annotated[
        Path | None, Opt("--output", "-o", help="Output folder. [default: out/preferences]")
    ] = None,
    constitution: Annotated[
        str | None, Opt(help="Constitution name or YAML path. [default: harmless]")
    ] = None,
    judge_model: Annotated[
        str | None,
        Opt(
            help="The judge model (name, folder, Hub id, or API model with "
            "--judge-backend openai). [default: smollm2-135m]"
        ),
    ] = None,
    judge_backend: Annotated[str | None, Opt(help="transformers or openai.")] = None,
    base_url: Annotated[list[str] | None, Opt(help="openai judge: server URL(s).")] = None,
    batch_size: Annotated[
        int | None, Opt(help="transformers judge: rows per forward pass.")
    ] = None,
    mode: Annotated[
        str | None,
        Opt(
            help="logprob (option probabilities), cot (reason first) or "
            "generate (parse a letter). [default: logprob]"
        ),
    ] = None,
    both_orders: Annotated[
        bool | None,
        Opt(
            "--both-orders/--one-order",
            help="Judge each pair in both orders and average. [default: on]",
        ),
    ] = None,
    principles: Annotated[
        str | None, Opt(help="Comparison questions per pair: a number or 'all'. [default: 1]")
    ] = None,
    cot_clamp: Annotated[
        bool | None,
        Opt("--cot-clamp/--no-cot-clamp", help="CoT: clamp p_chosen to [0.4, 0.6]. [default: on]"),
    ] = None,
    num_candidates: Annotated[
        int | None, Opt(help="Sample K responses per prompt from --policy first.")
    ] = None,
    policy: Annotated[str | None, Opt(help="The policy model that samples candidates.")] = None,
    pair_budget: Annotated[
        int | None, Opt(help="K > 2: judge at most this many pairs per prompt.")
    ] = None,
    seed: Annotated[int | None, Opt(help="The run's seed. [default: 0]")] = None,
    limit: Annotated[int | None, Opt(help="Use only the first N input rows.")] = None,
    split: Annotated[str | None, Opt(help="Input split.")] = None,
    test_size: Annotated[float | None, Opt(help="Held-out rows: a fraction or a count.")] = None,
    chunk_size: Annotated[int | None, Opt(help="Rows per saved chunk. [default: 64]")] = None,
    prompts_dir: PromptsDir = None,
    push_to_hub: Annotated[
        str | None, Opt(help="Push the dataset to this Hub repo when done.")
    ] = None,
    config: Annotated[
        Path | None,
        Opt(help="A YAML file of settings (JudgeConfig in cai/config.py); the command line wins."),
    ] = None,
) -> None:
    """Judge candidate responses pairwise (soft labels from option log-probabilities, both
    orders, optional chain of thought and k-wise Bradley-Terry rankings) and write a
    preference dataset for reward-model and DPO training. `cai judge calibrate` measures
    the judge on gold labels."""
    if ctx.invoked_subcommand is not None:
        return
    from cai.config import JudgeConfig, load_config
    from cai.judge_run import run_judge

    overrides = {
        "prompts": prompts,
        "output": output,
        "constitution": constitution,
        "mode": mode,
        "both_orders": both_orders,
        "principles": principles,
        "cot_clamp": cot_clamp,
        "num_candidates": num_candidates,
        "pair_budget": pair_budget,
        "limit": limit,
        "split": split,
        "test_size": test_size,
        "chunk_size": chunk_size,
        "prompts_dir": prompts_dir,
        "push_to_hub": push_to_hub,
        "judge": {
            "model": judge_model,
            "backend": judge_backend,
            "base_url": base_url,
            "batch_size": batch_size,
        },
        "policy": {"model": policy} if policy else None,
        "sampling": {"seed": seed},
    }
    cfg = load_config(JudgeConfig, config, overrides)
    s = run_judge(cfg)
    typer.echo(
        f"{s['rows']} preference rows ({s['pairs']} pairs) in {cfg.output}; "
        f"{s['rejected_rows']} rows skipped; {s['pairs_per_second']} pairs/s"
    )
    typer.echo(
        f"position consistency {s['position_consistency']}, option shown first wins "
        f"{s['a_win_rate']}, mean p_chosen {s['mean_p_chosen']}, abstentions {s['abstained']}"
    )


@judge_app.command("calibrate")
def judge_calibrate(
    gold: Annotated[
        Path, Opt(help="Gold pairs: the CAI paper's HHH format, or prompt/chosen/rejected JSONL.")
    ],
    judge_model: Annotated[str, Opt(help="The judge model.")] = "smollm2-135m",
    mode: Annotated[str, Opt(help="logprob, cot or generate.")] = "logprob",
    verbatim: Annotated[
        bool,
        Opt(
            "--verbatim/--rerendered",
            help="The file's own prompts (and the swapped order), or our template "
            "with the constitution's questions.",
        ),
    ] = True,
    constitution: Annotated[str, Opt(help="Constitution for --rerendered.")] = "harmless",
    principles: Annotated[
        str, Opt(help="--rerendered: comparison questions per pair (a number or 'all').")
    ] = "1",
    limit: Annotated[int | None, Opt(help="Use only the first N pairs.")] = None,
    batch_size: Annotated[int, Opt(help="Rows per forward pass.")] = 16,
    max_new_tokens: Annotated[int, Opt(help="CoT reasoning length.")] = 256,
    seed: Annotated[int, Opt(help="Seed for principle sampling and the bootstrap.")] = 0,
    output: Annotated[Path, Opt("--output", "-o", help="Report folder.")] = Path("out/calibration"),
) -> None:
    """Measure the judge on gold labels: accuracy with a bootstrap 95% CI, accuracy per
    order, position consistency, abstentions, length bias and a reliability plot."""
    from cai.backends import SamplingParams, load_backend
    from cai.calibrate_run import run_calibration
    from cai.calibration import summary_table
    from cai.constitution import load_constitution
    from cai.judge import Judge

    judge_obj = Judge(
        backend=load_backend("transformers", judge_model, batch_size=batch_size),
        constitution=load_constitution(constitution),
        mode=mode,
        principles=principles if principles == "all" else int(principles),
        seed=seed,
        params=SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0),
    )
    report = run_calibration(judge_obj, gold, output, verbatim=verbatim, limit=limit)
    typer.echo(summary_table(report))
    typer.echo(f"report: {output / 'report.json'}, plot: {output / 'reliability.png'}")


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
