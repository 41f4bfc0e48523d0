"""`cai evaluate`: wiring only; the work is in cai.evaluate.run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cai.cli.common import Opt


def evaluate(
    model: Annotated[
        list[str] | None,
        Opt("--model", help="A model to evaluate (repeatable; the first is the baseline)."),
    ] = None,
    prompts: Annotated[
        list[str] | None,
        Opt("--prompts", help="Prompt set(s) (repeatable). [red-team and helpful]"),
    ] = None,
    responses: Annotated[
        str | None, Opt(help="Score existing responses (prompt, response, model columns).")
    ] = None,
    samples: Annotated[int | None, Opt(help="Samples per prompt (K). [1]")] = None,
    limit: Annotated[int | None, Opt(help="First N prompts of each set.")] = None,
    output: Annotated[Path | None, Opt("--output", "-o", help="Report folder. [out/eval]")] = None,
    baseline: Annotated[str | None, Opt(help="Judge win rates against this model.")] = None,
    judge_model: Annotated[
        str | None, Opt(help="Judge for win rates ('none' to skip). [smollm2-135m]")
    ] = None,
    reward_model: Annotated[
        list[str] | None, Opt("--reward-model", help="Reward model(s) for helpfulness.")
    ] = None,
    toxicity: Annotated[
        str | None, Opt(help="jigsaw (offline) or a Hugging Face classifier. [jigsaw]")
    ] = None,
    refusal_judge: Annotated[
        bool | None, Opt(help="Detect refusals with the judge instead of phrases.")
    ] = None,
    backend: Annotated[
        str | None,
        Opt(
            help="Engine for the evaluated models: transformers, vllm or openai (options "
            "under `engine:` in --config). [transformers]"
        ),
    ] = None,
    max_new_tokens: Annotated[int | None, Opt(help="[256]")] = None,
    temperature: Annotated[float | None, Opt(help="[0.7]")] = None,
    seed: Annotated[int | None, Opt(help="[0]")] = None,
    config: Annotated[Path | None, Opt(help="YAML settings (EvalConfig in cai/config.py).")] = None,
) -> None:
    """Toxicity and helpfulness of models before and after alignment: generate answers to
    red-team and benign prompts, score each (Jigsaw toxicity, refusals, MiniLM relevance,
    reward models, judge win rates), and write scores.jsonl, metrics.json, summary.md and
    PNG plots."""
    from cai.config import EvalConfig, load_config
    from cai.evaluate import run_evaluation

    overrides = {
        "models": model, "prompts": prompts, "responses": responses, "samples": samples,
        "limit": limit, "output": output, "baseline": baseline, "toxicity": toxicity,
        "reward_models": reward_model, "refusal_judge": refusal_judge,
        "judge_model": None if judge_model in (None, "none") else judge_model,
        "sampling": {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed},
        "engine": {"backend": backend},
    }  # fmt: skip
    cfg = load_config(EvalConfig, config, overrides)
    if judge_model == "none":
        cfg.judge_model = None
    result = run_evaluation(cfg)
    typer.echo((cfg.output / "summary.md").read_text())
    typer.echo(f"{result['rows']} responses scored; report in {cfg.output}")
