"""`cai judge` and `cai judge calibrate`: wiring only; the judge is cai.judge.pairwise."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cai.cli.common import Opt
from cai.cli.options import ConfigFlags, config_command
from cai.config import JudgeConfig

app = typer.Typer(
    help="AI feedback: rank candidate responses against the constitution (RLAIF).",
    invoke_without_command=True,
)


JUDGE = ConfigFlags(
    JudgeConfig,
    prefixes={"judge": "judge-", "policy": "policy-", "sampling": ""},
    names={
        "judge.base_url": ("--judge-base-url", "--base-url"),
        "judge.batch_size": ("--judge-batch-size", "--batch-size"),
        "policy.model": ("--policy-model", "--policy"),
        "both_orders": ("--both-orders/--one-order",),
    },
)
"""`cai judge`: a flag per field; the judge's engine under --judge-*, the policy's under
--policy-*; sampling (the policy's) unprefixed."""


@app.callback()
@config_command(JUDGE)
def judge(cfg: JudgeConfig) -> None:
    """Judge candidate responses pairwise (soft labels from option log-probabilities, both
    orders, optional chain of thought and k-wise Bradley-Terry rankings) and write a
    preference dataset for reward-model and DPO training. `cai judge calibrate` measures
    the judge on gold labels."""
    from cai.judge import run_judge

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
