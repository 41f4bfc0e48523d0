"""`cai evaluate`: wiring only; the work is in cai.evaluate.run."""

from __future__ import annotations

import typer

from cai.cli.options import ConfigFlags, config_command
from cai.config import EvalConfig

EVALUATE = ConfigFlags(
    EvalConfig,
    prefixes={"engine": "engine-", "sampling": ""},
    names={
        "models": ("--models", "--model"),
        "reward_models": ("--reward-models", "--reward-model"),
        "engine.backend": ("--engine-backend", "--backend"),
    },
    skip=frozenset({"engine.model", "engine.batch_size"}),
)
"""`cai evaluate`: a flag per field (`--model` and `--reward-model` repeat); the evaluated
models' engine under --engine-* (its model and batch size come from --model and
--batch-size); sampling unprefixed."""


@config_command(EVALUATE)
def evaluate(cfg: EvalConfig) -> None:
    """Toxicity and helpfulness of models before and after alignment: generate answers to
    red-team and benign prompts, score each (Jigsaw toxicity, refusals, MiniLM relevance,
    reward models, judge win rates), and write scores.jsonl, metrics.json, summary.md and
    PNG plots."""
    from cai.evaluate import run_evaluation

    result = run_evaluation(cfg)
    typer.echo((cfg.output / "summary.md").read_text())
    typer.echo(f"{result['rows']} responses scored; report in {cfg.output}")
