"""`cai judge` and `cai judge calibrate`: wiring only; the judge is cai.judge.pairwise."""

from __future__ import annotations

import typer

from cai.cli.options import ConfigFlags, config_command
from cai.config import CalibrateConfig, JudgeConfig

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
        f"position consistency {s['position_consistency'] or 'n/a'}, option shown first wins "
        f"{s['a_win_rate'] or 'n/a'}, longer response wins {s['length_bias']['longer_wins']}, "
        f"mean p_chosen {s['mean_p_chosen']}, abstentions {s['abstained']}"
    )
    if "verified" in s:
        v = s["verified"]
        typer.echo(
            f"verified revisions: kept {v['kept']} of {v['rows']} ({v['kept_share']}) at "
            f"p >= {v['threshold']}; per principle: "
            + ", ".join(f"{k} {x['kept_share']}" for k, x in v["per_principle"].items())
        )


CALIBRATE = ConfigFlags(
    CalibrateConfig,
    prefixes={"judge": "judge-"},
    names={
        "judge.base_url": ("--judge-base-url", "--base-url"),
        "judge.batch_size": ("--judge-batch-size", "--batch-size"),
        "judge_max_new_tokens": ("--judge-max-new-tokens", "--max-new-tokens"),
        "verbatim": ("--verbatim/--rerendered",),
    },
)
"""`cai judge calibrate`: a flag per field (`--gold` is required); the judge's engine
under --judge-*."""


@app.command("calibrate")
@config_command(CALIBRATE)
def judge_calibrate(cfg: CalibrateConfig) -> None:
    """Measure the judge on gold labels: accuracy and length-balanced accuracy with
    bootstrap 95% CIs beside the always-longer baseline, accuracy per order, position
    consistency, abstentions, length bias and a reliability plot. `--mode all` puts every
    scoring mode in one table and fits scales and ensembles (reported out of fold) into
    OUTPUT/fits/, for `cai judge --mode ensemble --ensemble FILE`."""
    from cai.judge import all_modes_table, run_calibration_from_config, summary_table

    report = run_calibration_from_config(cfg)
    if cfg.mode == "all":
        typer.echo(all_modes_table(report))
        typer.echo(f"report: {cfg.output / 'report.json'}, fitted weights: {cfg.output / 'fits'}")
        return
    typer.echo(summary_table(report))
    typer.echo(f"report: {cfg.output / 'report.json'}, plot: {cfg.output / 'reliability.png'}")
