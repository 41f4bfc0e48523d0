"""The stages of ``cai pipeline``: what each reads, how its config is wired, what it runs.

Every stage calls the same function as its command (``run_revisions``, ``train_sft``,
``run_judge``, ...) with that command's own config, built from the recipe's section for
the stage plus the fields the pipeline owns: the stage's output folder and the models and
datasets it takes from earlier stages.

| stage | command | reads |
|---|---|---|
| revisions | `cai generate-revisions` | red-team prompts, the policy |
| sft | `cai train sft` | revisions |
| judge | `cai judge --num-candidates K --policy SFT` (samples, then judges) | sft |
| calibrate | `cai judge calibrate` | a gold file (optional) |
| reward | `cai train reward` | judge, sft |
| dpo | `cai train dpo` | judge, sft |
| ppo | `cai train ppo` | reward, dpo (else sft) |
| grpo | `cai train grpo` (reward model, else the judge, as reward) | reward, dpo (else sft) |
| round*k*-judge | `cai judge` sampling from the current policy | the previous policy |
| round*k*-train | `cai train dpo/orpo/simpo/kto` (ipo: dpo's loss_type ipo) | round*k*-judge |
| evaluate | `cai evaluate` on the base and every trained policy | every policy, reward |

A policy stage starts from the latest policy before it in this order: sft, dpo, each
round's train stage, ppo, grpo (grpo does not start from ppo).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from cai.config import CalibrateConfig, EvalConfig, JudgeConfig, ReviseConfig, first_error
from cai.errors import CaiError
from cai.pipeline.recipe import STAGES, Recipe, RoundSettings, parse_round, round_stage
from cai.train import config as tc

MODEL_STAGES = ("sft", "dpo", "ppo", "grpo")
"""Named stages whose output is a policy model, in the order they refine it."""
TRAIN_STAGES = ("sft", "reward", "dpo", "ppo", "grpo")
"""Named stages that train a model (as do the rounds' train stages)."""
ROUND_KIND = {"dpo": "dpo", "ipo": "dpo", "orpo": "orpo", "simpo": "simpo", "kto": "kto"}
"""A round's method -> the trainer (and config) it runs."""


@dataclass(frozen=True)
class Wiring:
    defaults: dict[str, Any]
    """Fields the recipe's section may change."""
    owned: dict[str, Any]
    """Dotted fields the pipeline sets; a section may not."""
    deps: tuple[str, ...]
    """Earlier stages whose outputs this stage reads."""


def out(recipe: Recipe, stage: str) -> Path:
    return recipe.output / stage


def round_settings(recipe: Recipe, k: int) -> tuple[str, dict, dict]:
    """Round ``k``'s method and its ``cai judge`` and trainer sections, merged: the judge's
    from the recipe's ``judge``, ``iterate.judge`` and the round's own, sampled with seed
    ``<the judge's seed, else the recipe's> + k``; the trainer's from the recipe's ``dpo``
    (for dpo and ipo rounds), ``iterate.train`` and the round's own; ipo forces trl's
    ``loss_type: [ipo]``."""
    mine = recipe.iterate.per_round.get(k) or RoundSettings()
    method = mine.method or recipe.iterate.method
    judge = _merge(_merge(recipe.judge, recipe.iterate.judge), mine.judge)
    sampling = dict(judge.get("sampling") or {})
    sampling["seed"] = int(sampling.get("seed", recipe.seed)) + k
    judge["sampling"] = sampling
    base = recipe.dpo if method in ("dpo", "ipo") else {}
    train = _merge(_merge(base, recipe.iterate.train), mine.train)
    if method == "ipo":
        train["trl"] = {**(train.get("trl") or {}), "loss_type": ["ipo"]}
    return method, judge, train


def stage_kind(recipe: Recipe, stage: str) -> str:
    """What a stage runs: its own name, ``judge`` for a round's judge stage, the trainer of
    the round's method (dpo, orpo, simpo, kto) for its train stage."""
    r = parse_round(stage)
    if r is None:
        return stage
    k, part = r
    return "judge" if part == "judge" else ROUND_KIND[round_settings(recipe, k)[0]]


def trains(stage: str) -> bool:
    """Whether ``stage`` trains a model (and so trains into ``<stage>.next``)."""
    r = parse_round(stage)
    return stage in TRAIN_STAGES or (r is not None and r[1] == "train")


def model_stages(recipe: Recipe) -> list[str]:
    """The stages that run and make a policy, in the order they refine it."""
    return [s for s in recipe.stages() if s in MODEL_STAGES or (trains(s) and parse_round(s))]


def _order(recipe: Recipe) -> list[str]:
    """Every stage the recipe could run, in running order (``run:`` aside)."""
    return recipe.model_copy(update={"run": list(STAGES)}).stages()


def policy_before(recipe: Recipe, stage: str) -> tuple[str, tuple[str, ...]]:
    """The policy a stage starts from: the latest earlier model stage, else the base."""
    order = _order(recipe)
    earlier = [s for s in model_stages(recipe) if order.index(s) < order.index(stage)]
    if stage in ("ppo", "grpo"):
        earlier = [s for s in earlier if s != "ppo"]
    if not earlier:
        return recipe.models.policy, ()
    return str(out(recipe, earlier[-1])), (earlier[-1],)


def _judge_wiring(r: Recipe, o: str, judging: dict, sampled_before: str) -> Wiring:
    """A judge stage that samples its candidates from the policy before ``sampled_before``
    (the ``judge`` stage: before ``dpo``; a round's: before its own judge stage, whose
    section then sets the round's sampling seed)."""
    policy, deps = policy_before(r, sampled_before)
    return Wiring(
        {"prompts": r.prompts.red_team, "constitution": r.constitution, "num_candidates": 2,
         "judge": {"model": r.models.judge}, "sampling": {"seed": r.seed}, **judging},
        {"output": o, "policy.model": policy}, deps)  # fmt: skip


def _round_wiring(recipe: Recipe, stage: str, o: str, judging: dict) -> Wiring:
    k, part = parse_round(stage)
    r, judge_stage = recipe, round_stage(k, "judge")
    if part == "judge":
        return _judge_wiring(r, o, judging, judge_stage)
    policy, deps = policy_before(r, judge_stage)
    owned = {"output": o, "model": policy, "dataset": str(out(r, judge_stage))}
    return Wiring({"seed": r.seed}, owned, (*deps, judge_stage))


def wiring(recipe: Recipe, stage: str) -> Wiring:
    r, o = recipe, str(out(recipe, stage))
    seed = r.seed
    judging = r.judging.model_dump(mode="json", include=r.judging.model_fields_set)
    if parse_round(stage):
        return _round_wiring(r, stage, o, judging)
    if stage == "revisions":
        return Wiring(
            {"prompts": r.prompts.red_team, "constitution": r.constitution,
             "backend": {"model": r.models.policy}, "sampling": {"seed": seed}},
            {"output": o}, ())  # fmt: skip
    if stage == "sft":
        owned = {"output": o, "model": r.models.policy, "dataset": str(out(r, "revisions"))}
        return Wiring({"seed": seed}, owned, ("revisions",))
    if stage == "judge":
        return _judge_wiring(r, o, judging, "dpo")  # the SFT model if there is one
    if stage == "calibrate":
        return Wiring({"judge": {"model": r.models.judge}, "constitution": r.constitution,
                       "seed": seed, **judging}, {"output": o}, ())  # fmt: skip
    if stage in ("reward", "dpo"):
        policy, deps = policy_before(r, "dpo")
        owned = {"output": o, "model": policy, "dataset": str(out(r, "judge"))}
        return Wiring({"seed": seed}, owned, (*deps, "judge"))
    if stage in ("ppo", "grpo"):
        policy, deps = policy_before(r, stage)
        defaults: dict[str, Any] = {"seed": seed, "dataset": r.prompts.red_team}
        owned: dict[str, Any] = {"output": o, "model": policy}
        if "reward" in r.run:
            deps = (*deps, "reward")
            if stage == "ppo":
                owned["reward_model"] = str(out(r, "reward"))
            else:
                defaults["rewards"] = [{"kind": "model", "path": str(out(r, "reward"))}]
        elif stage == "grpo":
            defaults["rewards"] = [{"kind": "judge", "judge": {"model": r.models.judge},
                                    "constitution": r.constitution, **judging}]  # fmt: skip
        return Wiring(defaults, owned, deps)
    if stage == "evaluate":
        trained = model_stages(r)
        models = [r.models.policy, *(str(out(r, s)) for s in trained)]
        deps = list(trained)
        defaults = {"prompts": r.prompts.evaluate, "judge": {"model": r.models.judge},
                    "constitution": r.constitution, "sampling": {"seed": seed},
                    **judging}  # fmt: skip
        if "reward" in r.run:
            defaults["reward_models"] = [str(out(r, "reward"))]
            deps.append("reward")
        return Wiring(defaults, {"output": o, "models": models}, tuple(dict.fromkeys(deps)))
    raise CaiError(f"unknown stage {stage!r}")


CONFIGS: dict[str, type[BaseModel]] = {
    "revisions": ReviseConfig, "sft": tc.SFTRunConfig, "judge": JudgeConfig,
    "calibrate": CalibrateConfig, "reward": tc.RewardRunConfig, "dpo": tc.DPORunConfig,
    "orpo": tc.ORPORunConfig, "simpo": tc.SimPORunConfig, "kto": tc.KTORunConfig,
    "ppo": tc.PPORunConfig, "grpo": tc.OnlineRunConfig, "evaluate": EvalConfig,
}  # fmt: skip
"""Each kind of stage's command config."""


def _merge(base: dict, over: dict) -> dict:
    merged = dict(base)
    for k, v in over.items():
        nested = isinstance(v, dict) and isinstance(merged.get(k), dict)
        merged[k] = _merge(merged[k], v) if nested else v
    return merged


def _has(data: dict, dotted: str) -> bool:
    head, _, rest = dotted.partition(".")
    if head not in data:
        return False
    return not rest or (isinstance(data[head], dict) and _has(data[head], rest))


def _set(data: dict, dotted: str, value: Any) -> None:
    head, _, rest = dotted.partition(".")
    if rest:
        data[head] = dict(data.get(head) or {})
        _set(data[head], rest, value)
    else:
        data[head] = value


def stage_config(recipe: Recipe, stage: str, source: str = "recipe") -> tuple[BaseModel, Wiring]:
    """The stage's command config: defaults, the recipe's section, then the owned fields."""
    w = wiring(recipe, stage)
    r = parse_round(stage)
    if r is None:
        section = getattr(recipe, stage)
    else:
        _, judge, train = round_settings(recipe, r[0])
        section = judge if r[1] == "judge" else train
    for field in w.owned:
        if _has(section, field):
            raise CaiError(
                f"{source}: stage {stage!r}: field {field!r} is set by the pipeline "
                "(it connects the stages); remove it from the recipe"
            )
    data = _merge(w.defaults, section)
    for field, value in w.owned.items():
        _set(data, field, value)
    try:
        cfg = CONFIGS[stage_kind(recipe, stage)].model_validate(data)
    except ValidationError as e:
        raise CaiError(f"{source}: stage {stage!r}: {first_error(e)}") from None
    if r is not None and r[1] == "judge":
        _check_round_judge(cfg, source, stage)
    return cfg, w


def _check_round_judge(cfg: JudgeConfig, source: str, stage: str) -> None:
    """A round samples from its policy: it needs candidates to sample and no revisions."""
    if not cfg.num_candidates:
        raise CaiError(
            f"{source}: stage {stage!r}: field 'num_candidates': a round samples its candidates "
            "from the current policy; set num_candidates (2 or more) in judge: or iterate.judge"
        )
    if cfg.verify_revisions is not None:
        raise CaiError(
            f"{source}: stage {stage!r}: field 'verify_revisions': a round judges samples of "
            "its policy, not revisions; set verify_revisions: null in iterate.judge"
        )


# ---------------------------------------------------------------------- running


def _calibrate(cfg: CalibrateConfig) -> dict:
    """``cai judge calibrate`` with the stage's config; skipped when the gold file (which
    the recipe names) is absent. A CoT or generate judge re-renders the gold pairs."""
    if not cfg.gold.is_file():
        return {"skipped": f"no gold file at {cfg.gold}"}
    from cai.judge import run_calibration_from_config

    return run_calibration_from_config(cfg)


RUNNERS = {
    "revisions": "cai.revise:run_revisions", "judge": "cai.judge:run_judge",
    "evaluate": "cai.evaluate:run_evaluation", "sft": "cai.train.sft:train_sft",
    "reward": "cai.train.reward:train_reward", "dpo": "cai.train.preference:train_dpo",
    "orpo": "cai.train.preference:train_orpo", "simpo": "cai.train.preference:train_simpo",
    "kto": "cai.train.kto:train_kto", "ppo": "cai.train.ppo:train_ppo",
}  # fmt: skip
"""Each kind of stage's function (the one its command calls), imported when it runs."""


def run_stage(kind: str, cfg: BaseModel) -> dict:
    """Run a stage of ``kind`` (``stage_kind``) with its config; return its summary."""
    if kind == "calibrate":
        return _calibrate(cfg)
    if kind == "grpo":
        from cai.train.online import train_online

        return train_online(cfg, "grpo")
    import importlib

    module, _, name = RUNNERS[kind].partition(":")
    return getattr(importlib.import_module(module), name)(cfg)


def digest(kind: str, s: dict) -> dict:
    """The few numbers of a stage's summary (of ``kind``) that the pipeline's report shows."""
    if s.get("skipped"):
        return {"skipped": s["skipped"]}
    if kind == "revisions":
        keys = ("rows", "generated_tokens", "tokens_per_second", "no_change_rate", "principles",
                "quality")  # fmt: skip
        return {k: s.get(k) for k in keys}
    if kind == "judge":
        keys = ("rows_written", "pairs", "position_consistency", "a_win_rate", "mean_p_chosen",
                "length_bias", "abstained", "verified")  # fmt: skip
        return {k: s.get(k) for k in keys if k in s}
    if kind == "calibrate":
        keys = ("n", "accuracy", "accuracy_ci", "position_consistency", "a_win_rate", "ece",
                "length_balanced_accuracy", "length_balanced_accuracy_ci",
                "always_longer_accuracy", "judge_mode", "figures")  # fmt: skip
        if s.get("mode") == "all":  # the every-mode table: its best row
            s = {**s["modes"][s["best"]], "n": s["n"], "judge_mode": s["best"],
                 "figures": s["modes"][s["best"]]["kind"]}  # fmt: skip
        return {k: s.get(k) for k in keys}
    if kind == "evaluate":
        return {"models": s["models"], "rows": s["rows"]}
    d = {k: s.get(k) for k in ("steps", "first_loss", "last_loss")}
    tokens = [e["num_tokens"] for e in s.get("log_history", []) if "num_tokens" in e]
    d["trained_tokens"] = tokens[-1] if tokens else None
    d["kind"] = s.get("kind")
    data = s.get("data") or {}
    for k in ("eval_accuracy", "eval_margin", "eval_rows", "dropped_uncertain", "desirable",
              "undesirable"):  # fmt: skip
        if k in s or k in data:
            d[k] = s.get(k, data.get(k))
    for k in ("reward_margins", "reward"):
        if s.get(k):
            d[k] = {"first": s[k][0], "last": s[k][-1], "steps": len(s[k])}
    return d
