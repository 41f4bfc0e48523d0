"""`cai train ...`, `cai best-of-n` and `cai export`: wiring only; the work is in cai.train.

Every train command shares the options of ``_shared`` (model, data, output, LoRA, trl
fields); ``shared_options`` adds them to each command's own signature once, here.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from cai.cli.common import Opt
from cai.errors import CaiError

app = typer.Typer(
    help="Train on CAI/RLAIF data with trl 1.12: sft, reward, dpo, ppo, grpo, rloo.\n\n"
    "Settings: defaults < --config YAML < command line. Any field of trl's own config "
    "(SFTConfig, RewardConfig, DPOConfig, PPOConfig, GRPOConfig, RLOOConfig) passes "
    "through with --set key=value (repeatable; values are YAML, e.g. --set "
    "gradient_accumulation_steps=4 --set report_to=[wandb]) or under `trl:` in the YAML. "
    "Every command runs unchanged under `accelerate launch`.",
    no_args_is_help=True,
)


def _shared(
    config: Annotated[
        Path | None, Opt(help="YAML settings (cai/train/config.py); the command line wins.")
    ] = None,
    model: Annotated[
        str | None, Opt(help="Model to train: packaged name, folder or Hub id. [smollm2-135m]")
    ] = None,
    dataset: Annotated[
        str | None, Opt(help="Training data: a cai output folder, a file or a Hub id.")
    ] = None,
    output: Annotated[Path | None, Opt("--output", "-o", help="Where the model is saved.")] = None,
    split: Annotated[str | None, Opt(help="Training split. [train]")] = None,
    eval_split: Annotated[str | None, Opt(help="A held-out split to evaluate on.")] = None,
    limit: Annotated[int | None, Opt(help="Use only the first N rows.")] = None,
    seed: Annotated[int | None, Opt(help="The run's seed. [0]")] = None,
    max_steps: Annotated[int | None, Opt(help="trl max_steps. [50]")] = None,
    learning_rate: Annotated[float | None, Opt(help="trl learning_rate.")] = None,
    batch_size: Annotated[int | None, Opt(help="trl per_device_train_batch_size. [4]")] = None,
    set_: Annotated[
        list[str] | None, Opt("--set", help="A trl config field: key=value (repeatable).")
    ] = None,
    lora: Annotated[
        bool | None, Opt("--lora/--no-lora", help="Train a LoRA adapter (peft). [off]")
    ] = None,
    lora_r: Annotated[int | None, Opt(help="LoRA rank. [16]")] = None,
    resume_from_checkpoint: Annotated[
        str | None, Opt(help="A checkpoint folder, or 'latest' in --output.")
    ] = None,
    push_to_hub: Annotated[str | None, Opt(help="Push the model to this Hub repo.")] = None,
    private: Annotated[bool | None, Opt(help="Make the pushed repo private.")] = None,
    trust_remote_code: Annotated[
        bool | None, Opt(help="Run the model repo's code (only for models you trust).")
    ] = None,
) -> None:
    """The options every `cai train` command takes (never called; its signature is used)."""


def _parse_set(items: list[str] | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CaiError(f"--set {item!r}: write key=value, e.g. --set warmup_ratio=0.1")
        fields[key.strip()] = yaml.safe_load(value)
    return fields


def _overrides(s: dict[str, Any]) -> dict[str, Any]:
    trl = {
        "max_steps": s.pop("max_steps"),
        "learning_rate": s.pop("learning_rate"),
        "per_device_train_batch_size": s.pop("batch_size"),
        **_parse_set(s.pop("set_")),
    }
    s["trl"] = trl
    s["lora"] = {"enabled": s.pop("lora"), "r": s.pop("lora_r")}
    s.pop("config")
    return s


def shared_options(fn):
    """Give ``fn`` the shared options too; it receives them as ``shared`` (config, overrides)."""
    own = inspect.signature(fn, eval_str=True).parameters
    common = inspect.signature(_shared, eval_str=True).parameters
    names = list(common)

    @functools.wraps(fn)
    def command(**kw):
        given = {k: kw.pop(k) for k in names}
        config = given["config"]
        return fn(shared=(config, _overrides(given)), **kw)

    params = [p for n, p in own.items() if n != "shared"] + list(common.values())
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    del command.__wrapped__
    return command


def _run(kind: str, shared: tuple, extra: dict[str, Any]) -> None:
    from cai.config import load_config
    from cai.train import config as tc

    classes = {
        "sft": tc.SFTRunConfig,
        "reward": tc.RewardRunConfig,
        "dpo": tc.DPORunConfig,
        "ppo": tc.PPORunConfig,
        "grpo": tc.OnlineRunConfig,
        "rloo": tc.OnlineRunConfig,
    }
    path, overrides = shared
    cfg = load_config(classes[kind], path, {**overrides, **extra})
    if kind in ("grpo", "rloo") and "output" not in cfg.model_fields_set:
        cfg.output = Path(f"out/{kind}")
    if kind == "sft":
        from cai.train.sft import train_sft as train
    elif kind == "reward":
        from cai.train.reward import train_reward as train
    elif kind == "dpo":
        from cai.train.dpo import train_dpo as train
    elif kind == "ppo":
        from cai.train.ppo import train_ppo as train
    else:
        from cai.train.online import train_online

        def train(c):
            return train_online(c, kind)

    summary = train(cfg)
    typer.echo(
        f"{kind}: {summary['steps']} steps in {summary['seconds']} s, loss "
        f"{summary['first_loss']} -> {summary['last_loss']}; saved to {cfg.output}"
    )


@app.command("sft")
@shared_options
def sft(
    shared: tuple,
    mix: Annotated[
        list[str] | None,
        Opt(help="Mix in DATASET:FRACTION of helpful data (rows relative to the main set)."),
    ] = None,
) -> None:
    """SFT on a generate-revisions dataset; the loss falls on the revision only."""
    _run("sft", shared, {"mix": mix})


@app.command("reward")
@shared_options
def reward(
    shared: tuple,
    use_margin: Annotated[
        bool | None, Opt("--use-margin/--no-margin", help="Margin loss from `margin`. [off]")
    ] = None,
    min_confidence: Annotated[
        float | None, Opt(help="Drop pairs with |p_chosen - 0.5| below this. [0.05]")
    ] = None,
) -> None:
    """A reward model (one-output classifier) on a `cai judge` preference dataset."""
    _run("reward", shared, {"use_margin": use_margin, "min_confidence": min_confidence})


@app.command("dpo")
@shared_options
def dpo(
    shared: tuple,
    loss_type: Annotated[
        list[str] | None, Opt(help="trl loss type(s): sigmoid, ipo, robust, hinge, ...")
    ] = None,
    beta: Annotated[float | None, Opt(help="trl beta. [0.1]")] = None,
    label_smoothing: Annotated[float | None, Opt(help="trl label_smoothing (robust/cDPO).")] = None,
    min_confidence: Annotated[
        float | None, Opt(help="Drop pairs with |p_chosen - 0.5| below this. [0]")
    ] = None,
) -> None:
    """DPO on a preference dataset (`cai judge` or generate-revisions output)."""
    trl = {"loss_type": loss_type, "beta": beta, "label_smoothing": label_smoothing}
    shared[1]["trl"].update({k: v for k, v in trl.items() if v is not None})
    _run("dpo", shared, {"min_confidence": min_confidence})


@app.command("ppo")
@shared_options
def ppo(
    shared: tuple,
    reward_model: Annotated[
        str | None,
        Opt(help="The single reward model (required; e.g. a `cai train reward` output)."),
    ] = None,
    value_model: Annotated[str | None, Opt(help="Value model init. [the reward model]")] = None,
    ref_model: Annotated[str | None, Opt(help="Frozen reference. [a copy of --model]")] = None,
) -> None:
    """PPO (trl.experimental) with ONE reward model; prompts from --dataset [red-team].
    For several rewards or the judge as reward, use grpo or rloo."""
    extra = {"reward_model": reward_model, "value_model": value_model, "ref_model": ref_model}
    _run("ppo", shared, extra)


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


def _online(kind: str, shared: tuple, rewards: list[dict] | None, combine) -> None:
    _run(kind, shared, {"rewards": rewards, "combine": combine})


RewardModels = Annotated[
    list[str] | None, Opt("--reward-model", help="A reward model (repeatable).")
]
Weights = Annotated[list[float] | None, Opt("--weight", help="Weights, in reward order.")]
JudgeModel = Annotated[
    str | None, Opt(help="Add the `cai judge` reward with this judge model (direct RLAIF).")
]
Toxicity = Annotated[
    bool,
    Opt(
        "--toxicity-penalty",
        help="Add minus the toxicity score (the packaged Jigsaw classifier, in [0, 1]) as a "
        "reward; weight it with --weight after the others.",
    ),
]
Combine = Annotated[
    str | None, Opt(help="sum (weighted) or safety-switch (Llama 2: safety, helpful). [sum]")
]


@app.command("grpo")
@shared_options
def grpo(
    shared: tuple,
    reward_model: RewardModels = None,
    weight: Weights = None,
    judge_model: JudgeModel = None,
    toxicity_penalty: Toxicity = False,
    combine: Combine = None,
) -> None:
    """GRPO on prompts (--dataset, default red-team) with reward models and/or the judge."""
    specs = _reward_specs(reward_model, weight, judge_model, toxicity_penalty)
    _online("grpo", shared, specs, combine)


@app.command("rloo")
@shared_options
def rloo(
    shared: tuple,
    reward_model: RewardModels = None,
    weight: Weights = None,
    judge_model: JudgeModel = None,
    toxicity_penalty: Toxicity = False,
    combine: Combine = None,
) -> None:
    """RLOO on prompts (--dataset, default red-team) with reward models and/or the judge."""
    specs = _reward_specs(reward_model, weight, judge_model, toxicity_penalty)
    _online("rloo", shared, specs, combine)


def best_of_n(
    prompts: Annotated[str | None, Opt(help="Prompts. [red-team]")] = None,
    output: Annotated[Path | None, Opt("--output", "-o", help="[out/best-of-n]")] = None,
    policy: Annotated[str | None, Opt(help="The sampling model. [smollm2-135m]")] = None,
    n: Annotated[int | None, Opt("--n", help="Samples per prompt. [4]")] = None,
    reward_model: RewardModels = None,
    weight: Weights = None,
    judge_model: JudgeModel = None,
    toxicity_penalty: Toxicity = False,
    combine: Combine = None,
    limit: Annotated[int | None, Opt(help="Use only the first N prompts.")] = None,
    max_new_tokens: Annotated[int | None, Opt(help="[256]")] = None,
    temperature: Annotated[float | None, Opt(help="[0.7]")] = None,
    seed: Annotated[int | None, Opt(help="[0]")] = None,
    config: Annotated[Path | None, Opt(help="YAML settings (BestOfNConfig).")] = None,
) -> None:
    """Rejection sampling (Llama 2): sample N answers per prompt, keep the highest-reward
    one, and write an SFT dataset. Resumable like generate-revisions."""
    from cai.best_of_n import run_best_of_n
    from cai.config import BestOfNConfig, load_config

    specs = _reward_specs(reward_model, weight, judge_model, toxicity_penalty)
    overrides = {
        "prompts": prompts,
        "output": output,
        "n": n,
        "limit": limit,
        "combine": combine,
        "rewards": specs,
        "policy": {"model": policy},
        "sampling": {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed},
    }
    cfg = load_config(BestOfNConfig, config, overrides)
    s = run_best_of_n(cfg)
    typer.echo(
        f"best-of-{cfg.n}: {s['rows']} rows, mean best reward {s['mean_best_reward']} "
        f"(mean sample {s['mean_sample_reward']}); written to {cfg.output}"
    )


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
