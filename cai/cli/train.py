"""`cai train ...` and `cai export`: wiring only; the work is in cai.train.

Each train command's options derive from its config (cai/train/config.py): one flag per
field, LoRA's under --lora-*, and ``--set`` for anything else, where a key that names no
field is a field of trl's own config. grpo and rloo are one command over one config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cai.cli.common import Opt
from cai.cli.options import ConfigFlags, config_command
from cai.errors import CaiError
from cai.train.config import (
    DPORunConfig,
    KTORunConfig,
    OnlineDPORunConfig,
    OnlineRunConfig,
    ORPORunConfig,
    PPORunConfig,
    RewardRunConfig,
    SFTRunConfig,
    SimPORunConfig,
    TrainConfig,
)

app = typer.Typer(
    help="Train on CAI/RLAIF data with trl 1.12: sft, reward, dpo, orpo, simpo, kto, ppo, "
    "grpo, rloo, online-dpo.\n\n"
    "Settings: defaults < --config YAML < flags < --set. Every field of cai/train/config.py "
    "has a flag; any field of trl's own config (SFTConfig, RewardConfig, DPOConfig, "
    "ORPOConfig, CPOConfig, KTOConfig, PPOConfig, GRPOConfig, RLOOConfig, OnlineDPOConfig) "
    "passes through with --set key=value (repeatable; "
    "values are YAML, e.g. --set gradient_accumulation_steps=4 --set report_to=[wandb]) or "
    "under `trl:` in the YAML. Every command runs unchanged under `accelerate launch`.",
    no_args_is_help=True,
)


def _trl(**fields: Any) -> dict[str, Any]:
    given = {k: v for k, v in fields.items() if v not in (None, [], ())}
    return {"trl": given} if given else {}


def trl_shorthands(
    max_steps: Annotated[int | None, Opt(help="trl's max_steps (as --set max_steps=N).")] = None,
    learning_rate: Annotated[float | None, Opt(help="trl's learning_rate.")] = None,
    batch_size: Annotated[int | None, Opt(help="trl's per_device_train_batch_size.")] = None,
) -> dict[str, Any]:
    """Shorthands for the trl fields most runs set."""
    return _trl(
        max_steps=max_steps, learning_rate=learning_rate, per_device_train_batch_size=batch_size
    )


def dpo_shorthands(
    loss_type: Annotated[
        list[str] | None, Opt(help="trl's loss_type(s): sigmoid, ipo, robust, hinge, ...")
    ] = None,
    beta: Annotated[float | None, Opt(help="trl's beta.")] = None,
    label_smoothing: Annotated[
        float | None, Opt(help="trl's label_smoothing (robust/cDPO).")
    ] = None,
) -> dict[str, Any]:
    """Shorthands for DPOConfig's loss settings."""
    return _trl(loss_type=loss_type, beta=beta, label_smoothing=label_smoothing)


def _reward_specs(reward_models, weights, judge_model, toxicity: bool) -> list[dict] | None:
    """The rewards of the command line, in order: reward models, the judge, the toxicity."""
    specs = [{"kind": "model", "path": p} for p in reward_models or []]
    if judge_model:
        specs.append({"kind": "judge", "path": judge_model})
    if toxicity:
        specs.append({"kind": "toxicity"})
    for spec, w in zip(specs, weights or []):
        spec["weight"] = w
    return specs or None


def reward_flags(
    reward_model: Annotated[
        list[str] | None, Opt("--reward-model", help="A reward model (repeatable); sets `rewards`.")
    ] = None,
    weight: Annotated[list[float] | None, Opt("--weight", help="Weights, in reward order.")] = None,
    judge_model: Annotated[
        str | None, Opt(help="Add the `cai judge` reward with this judge model (direct RLAIF).")
    ] = None,
    toxicity_penalty: Annotated[
        bool,
        Opt(
            "--toxicity-penalty",
            help="Add minus the toxicity score (the packaged Jigsaw classifier, in [0, 1]) as a "
            "reward; weight it with --weight after the others.",
        ),
    ] = False,
) -> dict[str, Any]:
    """The `rewards` list from named flags (`--set rewards=[...]` gives any list)."""
    specs = _reward_specs(reward_model, weight, judge_model, toxicity_penalty)
    return {"rewards": specs} if specs else {}


def _flags(
    cls: type[TrainConfig],
    *extras: Callable[..., dict],
    names: dict[str, tuple[str, ...]] | None = None,
    **defaults: Any,
) -> ConfigFlags:
    return ConfigFlags(
        cls,
        prefixes={"lora": "lora-"},
        names={"lora.enabled": ("--lora/--no-lora",), **(names or {})},
        defaults=defaults,
        extras=(trl_shorthands, *extras),
        set_fallback="trl",
    )


TRAIN: dict[str, ConfigFlags] = {
    "sft": _flags(SFTRunConfig),
    "reward": _flags(RewardRunConfig, names={"use_margin": ("--use-margin/--no-margin",)}),
    "dpo": _flags(DPORunConfig, dpo_shorthands),
    "orpo": _flags(ORPORunConfig),
    "simpo": _flags(SimPORunConfig),
    "kto": _flags(KTORunConfig),
    "ppo": _flags(PPORunConfig),
    "grpo": _flags(OnlineRunConfig, reward_flags),
    "rloo": _flags(OnlineRunConfig, reward_flags, output=Path("out/rloo")),
    "online-dpo": _flags(OnlineDPORunConfig, reward_flags),
}
"""Each train command's options: its config, the trl shorthands, and its own extras."""

HELP = {
    "sft": "SFT on a generate-revisions dataset; the loss falls on the revision only.",
    "reward": "A reward model (one-output classifier) on a `cai judge` preference dataset.",
    "dpo": "DPO on a preference dataset (`cai judge` or generate-revisions output).",
    "orpo": "ORPO (trl.experimental.orpo.ORPOTrainer): SFT on chosen plus an odds-ratio "
    "preference loss; no reference model. beta is the paper's lambda.",
    "simpo": "SimPO (trl.experimental.cpo.CPOTrainer, loss_type=simpo, cpo_alpha=0): a "
    "length-normalised margin, no reference model; beta 2.0 and simpo_gamma 1.0 by default.",
    "kto": "KTO (trl.KTOTrainer) on unpaired good/bad completions: from pairs, from a label "
    "column, or from a per-completion score with --score-column and --threshold.",
    "ppo": "PPO (trl.experimental) with ONE reward model; prompts from --dataset "
    "[red-team]. For several rewards or the judge as reward, use grpo or rloo.",
    "grpo": "GRPO on prompts (--dataset, default red-team) with reward models and/or the judge.",
    "rloo": "RLOO on prompts (--dataset, default red-team) with reward models and/or the judge.",
    "online-dpo": "Online DPO (trl.experimental.online_dpo.OnlineDPOTrainer): two samples per "
    "prompt from the current policy, labelled by the judge (--judge-model; default "
    "smollm2-135m) or rewards.",
}


def _trainer(kind: str) -> Callable[[Any], dict]:
    from cai import train

    if kind in ("grpo", "rloo", "online-dpo"):
        return lambda cfg: train.train_online(cfg, kind)
    return getattr(train, f"train_{kind}")


def train_command(kind: str) -> Callable[..., None]:
    """The `cai train KIND` command: build the config, train, print one summary line."""

    @config_command(TRAIN[kind])
    def command(cfg: TrainConfig) -> None:
        summary = _trainer(kind)(cfg)
        typer.echo(
            f"{kind}: {summary['steps']} steps in {summary['seconds']} s, loss "
            f"{summary['first_loss']} -> {summary['last_loss']}; saved to {cfg.output}"
        )

    return command


for _kind in TRAIN:
    app.command(_kind, help=HELP[_kind])(train_command(_kind))


def export(
    adapter: Annotated[Path, typer.Argument(help="A LoRA output folder of `cai train`.")],
    output: Annotated[Path, Opt("--output", "-o", help="Where the merged model goes.")],
    merge_lora: Annotated[
        bool, Opt("--merge-lora", help="Merge the adapter into the base.")
    ] = False,
    base: Annotated[str | None, Opt(help="The base model. [from adapter_config.json]")] = None,
) -> None:
    """Export a trained model; --merge-lora folds a LoRA adapter into its base weights."""
    from cai.train.export import merge_lora as merge

    if not merge_lora:
        raise CaiError("nothing to do: pass --merge-lora")
    typer.echo(f"merged model saved to {merge(adapter, output, base)}")
