"""`cai judge` and `cai judge calibrate`: wiring only; the judge is cai.judge.pairwise."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cai.cli.common import AllowPartial, Opt, PromptsDir

app = typer.Typer(
    help="AI feedback: rank candidate responses against the constitution (RLAIF).",
    invoke_without_command=True,
)


@app.callback()
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
    judge_backend: Annotated[str | None, Opt(help="transformers, vllm or openai.")] = None,
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
    emit_pairs: Annotated[
        str | None,
        Opt(
            help="K > 2: best-worst (one row per prompt) or all (one row per judged pair, "
            "with its Bradley-Terry margin). [default: best-worst]"
        ),
    ] = None,
    verify_revisions: Annotated[
        float | None,
        Opt(
            help="With a generate-revisions output: keep only rows where the judge prefers "
            "the revision with at least this probability (e.g. 0.5); reports the share kept "
            "per principle."
        ),
    ] = None,
    seed: Annotated[int | None, Opt(help="The run's seed. [default: 0]")] = None,
    limit: Annotated[int | None, Opt(help="Use only the first N input rows.")] = None,
    split: Annotated[str | None, Opt(help="Input split.")] = None,
    test_size: Annotated[float | None, Opt(help="Held-out rows: a fraction or a count.")] = None,
    chunk_size: Annotated[int | None, Opt(help="Rows per saved chunk. [default: 64]")] = None,
    prompts_dir: PromptsDir = None,
    allow_partial: AllowPartial = None,
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
    from cai.judge import run_judge

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
        "emit_pairs": emit_pairs,
        "verify_revisions": verify_revisions,
        "limit": limit,
        "split": split,
        "test_size": test_size,
        "chunk_size": chunk_size,
        "prompts_dir": prompts_dir,
        "allow_partial": allow_partial,
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
        f"{s['rows_written']} preference rows ({s['pairs']} pairs judged) in {cfg.output}; "
        f"{s['resumed_rows']} resumed, {s['changed_rows']} changed since the last run; "
        f"{s['rejected_rows']} rows skipped; {s['pairs_per_second']} pairs/s"
    )
    typer.echo(
        f"position consistency {s['position_consistency']}, option shown first wins "
        f"{s['a_win_rate']}, longer response wins {s['length_bias']['longer_wins']}, "
        f"mean p_chosen {s['mean_p_chosen']}, abstentions {s['abstained']}"
    )
    if "verified" in s:
        v = s["verified"]
        typer.echo(
            f"verified revisions: kept {v['kept']} of {v['rows']} ({v['kept_share']}) at "
            f"p >= {v['threshold']}; per principle: "
            + ", ".join(f"{k} {x['kept_share']}" for k, x in v["per_principle"].items())
        )


@app.command("calibrate")
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
    sample: Annotated[
        int | None, Opt(help="Judge a random N pairs, drawn with --seed (the file may be sorted).")
    ] = None,
    batch_size: Annotated[int, Opt(help="Rows per forward pass.")] = 16,
    max_new_tokens: Annotated[int, Opt(help="CoT reasoning length.")] = 256,
    seed: Annotated[int, Opt(help="Seed for principle sampling and the bootstrap.")] = 0,
    output: Annotated[Path, Opt("--output", "-o", help="Report folder.")] = Path("out/calibration"),
) -> None:
    """Measure the judge on gold labels: accuracy with a bootstrap 95% CI, accuracy per
    order, position consistency, abstentions, length bias and a reliability plot."""
    from cai.backends import SamplingParams, load_backend
    from cai.constitution import load_constitution
    from cai.judge import Judge, run_calibration, summary_table

    judge_obj = Judge(
        backend=load_backend("transformers", judge_model, batch_size=batch_size),
        constitution=load_constitution(constitution),
        mode=mode,
        principles=principles if principles == "all" else int(principles),
        seed=seed,
        params=SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0),
    )
    report = run_calibration(
        judge_obj, gold, output, verbatim=verbatim, limit=limit, sample=sample, seed=seed
    )
    typer.echo(summary_table(report))
    typer.echo(f"report: {output / 'report.json'}, plot: {output / 'reliability.png'}")
