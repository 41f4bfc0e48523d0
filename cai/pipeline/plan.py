"""Planning a recipe: each stage's config, key, status and folders, checked before anything runs.

A stage's key hashes its full command config, the keys of the stages it reads (or, for a
stage not in ``run:``, its stored key; for a model folder given by hand, its content
identity), its constitution's content hash and the cai version. ``plan`` gives every
stage with its status; ``check_plans`` refuses a run whose input stages are missing or
whose trl settings are invalid, before any stage touches its folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from cai import __version__
from cai._util import canonical_hash, file_sha256
from cai.errors import CaiError
from cai.models import model_identity
from cai.pipeline.recipe import STAGES, Recipe
from cai.pipeline.stages import out, stage_config, stage_kind, trains

STAGE_FILE = "stage.json"
NOT_INPUTS = frozenset({"output", "trl", "resume_from_checkpoint", "push_to_hub"})
"""Config fields that name no folder a stage reads."""


@dataclass
class StagePlan:
    name: str
    config: BaseModel
    deps: tuple[str, ...]
    key: str
    folder: Path
    status: str
    """done (skipped on a rerun), stale (ran with other inputs), partial (interrupted) or
    pending (never ran)."""


def _constitution_hash(cfg: BaseModel) -> str | None:
    name = getattr(cfg, "constitution", None)
    if not isinstance(name, str):
        return None
    from cai.constitution import load_constitution

    return load_constitution(name).content_hash


def read_stage(folder: Path) -> dict:
    f = folder / STAGE_FILE
    try:
        return json.loads(f.read_text()) if f.is_file() else {}
    except (OSError, ValueError):
        return {}  # torn or unreadable: the stage counts as never run


def staging(folder: Path) -> Path:
    """Where a training stage trains before its model replaces ``folder``."""
    return folder.with_name(folder.name + ".next")


def _aside(folder: Path) -> Path:
    return folder.with_name(folder.name + ".old")


def finished_output(folder: Path) -> dict | None:
    """What marks ``folder`` as a finished output, or None: a complete ``stage.json``,
    else a complete cai ``run.json`` (a dataset) or a ``cai_train.json`` (a model)."""
    rec = read_stage(folder)
    if rec:
        return rec if rec.get("complete") else None
    for name, done in (("run.json", lambda r: r.get("complete")), ("cai_train.json", bool)):
        try:
            record = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and done(record):
            return record
    return None


def _outside_key(folder: Path) -> str | None:
    """The key of an input stage that is not in ``run:``, from its finished output."""
    rec = finished_output(folder)
    if rec is None:
        return None
    return rec.get("key") or rec.get("fingerprint") or model_identity(str(folder))


def _hand_folders(cfg: BaseModel, recipe: Recipe) -> dict[str, str]:
    """Folders the stage reads that no stage makes (a model or dataset given by hand),
    with their content identity: retraining such a model in place changes the key."""
    made = {out(recipe, s).resolve() for s in (*STAGES, *recipe.stages())}
    made |= {g for f in list(made) for g in (staging(f), _aside(f))}
    found: dict[str, str] = {}

    def walk(value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k not in NOT_INPUTS:
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and value not in found:
            path = Path(value).expanduser()
            if path.is_dir() and path.resolve() not in made:
                found[value] = model_identity(value)

    walk(cfg.model_dump(mode="json"))
    return found


def plan(recipe: Recipe, source: str = "recipe") -> list[StagePlan]:
    """Every stage of the recipe with its config, key and status, in running order."""
    keys: dict[str, str] = {}
    plans: list[StagePlan] = []
    for name in recipe.stages():
        cfg, w = stage_config(recipe, name, source)
        deps = {d: keys.get(d) or _outside_key(out(recipe, d)) for d in w.deps}
        blob = {
            "stage": name,
            "config": cfg.model_dump(mode="json"),
            "deps": {d: k for d, k in deps.items() if k is not None},
            "constitution": _constitution_hash(cfg),
            "cai": __version__,
        }
        if (kind := stage_kind(recipe, name)) != name:  # a round's: dpo, orpo and simpo
            blob["kind"] = kind  # share one config class, so the key names the trainer
        if hand := _hand_folders(cfg, recipe):
            blob["folders"] = hand
        weights = getattr(cfg, "ensemble", None)
        if weights is not None and Path(weights).is_file():  # the judge's fitted weights
            blob["ensemble"] = file_sha256(weights)
        key = canonical_hash(blob, 16)
        keys[name] = key
        folder = out(recipe, name)
        rec = read_stage(folder)
        nxt = read_stage(staging(folder)) if trains(name) else {}
        if rec.get("key") == key and rec.get("complete"):
            status = "done"
        elif rec.get("key") == key or nxt.get("key") == key:
            status = "partial"
        else:
            status = "stale" if rec or nxt else "pending"
        upstream = {q.name: q.status for q in plans}
        if status == "done" and any(upstream.get(d, "done") != "done" for d in w.deps):
            status = "stale"  # an input will be made again
        plans.append(StagePlan(name, cfg, w.deps, key, folder, status))
    return plans


def check_plans(recipe: Recipe, plans: list[StagePlan], source: str = "recipe") -> None:
    """Before anything runs: every input of a stage to run is made by an earlier stage or
    is a finished output, and every training stage's ``trl:`` settings are valid."""
    todo = [p for p in plans if p.status != "done"]
    for p in todo:
        for d in p.deps:
            where = out(recipe, d)
            if d not in recipe.stages() and finished_output(where) is None:
                raise CaiError(
                    f"{source}: stage {p.name!r} reads the output of {d!r}, which is not in "
                    f"run: and has no finished output at {where}; add {d!r} to run:"
                )
    train = [p for p in todo if trains(p.name)]
    if train:
        from cai.train.common import check_trl

        for p in train:
            try:
                check_trl(stage_kind(recipe, p.name), p.config)
            except CaiError as e:
                raise CaiError(f"{source}: stage {p.name!r}: {e}") from None
