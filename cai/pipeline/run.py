"""Running a recipe: stage keys, skip-if-unchanged, resume, status and the report.

Every stage's folder holds ``stage.json``: the stage's key, whether it completed, its wall
time and a digest of its summary. The key hashes the stage's full command config (which
names the folders it reads), the keys of the stages it reads, the content hash of its
constitution and the ``cai`` version. So a stage is skipped when its key matches a
completed ``stage.json``, and a change anywhere reruns exactly the stages that depend on
it: editing one principle changes the revisions key, and through it every later one;
changing DPO's beta changes the DPO key and those of the stages after it that read DPO's
model, while revisions, SFT, judge and reward are skipped.

An interrupted stage resumes inside itself: revisions, judge and evaluation with their
own row journals, training from its newest checkpoint (when the key is unchanged).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from cai import __version__
from cai.files import write_json_atomic
from cai.pipeline.recipe import Recipe
from cai.pipeline.stages import digest, out, run_stage, stage_config

STAGE_FILE = "stage.json"
TRAIN_STAGES = ("sft", "reward", "dpo", "ppo", "grpo")


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
    return json.loads(f.read_text()) if f.is_file() else {}


def plan(recipe: Recipe, source: str = "recipe") -> list[StagePlan]:
    """Every stage of the recipe with its config, key and status, in running order."""
    keys: dict[str, str] = {}
    plans: list[StagePlan] = []
    for name in recipe.stages():
        cfg, w = stage_config(recipe, name, source)
        blob = {
            "stage": name,
            "config": cfg.model_dump(mode="json"),
            "deps": {d: keys[d] for d in w.deps if d in keys},
            "constitution": _constitution_hash(cfg),
            "cai": __version__,
        }
        key = hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]
        keys[name] = key
        folder = out(recipe, name)
        rec = read_stage(folder)
        if not rec:
            status = "pending"
        elif rec.get("key") != key:
            status = "stale"
        else:
            status = "done" if rec.get("complete") else "partial"
        upstream = {q.name: q.status for q in plans}
        if status == "done" and any(upstream.get(d) != "done" for d in w.deps):
            status = "stale"  # an input will be made again
        plans.append(StagePlan(name, cfg, w.deps, key, folder, status))
    return plans


def _prepare(p: StagePlan) -> None:
    """Make a stage ready to (re)run: a training stage with other inputs starts clean."""
    rec = read_stage(p.folder)
    if p.name in TRAIN_STAGES and rec and rec.get("key") != p.key and p.folder.exists():
        shutil.rmtree(p.folder)
    if p.name in TRAIN_STAGES and p.status == "partial":
        if any(p.folder.glob("checkpoint-*")):
            p.config = p.config.model_copy(update={"resume_from_checkpoint": "latest"})
    p.folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(p.folder / STAGE_FILE, {"stage": p.name, "key": p.key, "complete": False})


def run_pipeline(recipe: Recipe, source: str = "recipe", log=print) -> dict:
    """Run every stage that is not done; write the report; return the run's record."""
    from cai.pipeline.report import write_report

    plans = plan(recipe, source)
    ran: list[str] = []
    for p in plans:
        if p.status == "done":
            log(f"[{p.name}] unchanged, skipped ({p.folder})")
            continue
        log(f"[{p.name}] running ({p.status}) -> {p.folder}")
        _prepare(p)
        start = time.perf_counter()
        summary = run_stage(p.name, p.config)
        seconds = round(time.perf_counter() - start, 1)
        record = {"stage": p.name, "key": p.key, "complete": True, "seconds": seconds,
                  "deps": list(p.deps), "digest": digest(p.name, summary)}  # fmt: skip
        write_json_atomic(p.folder / STAGE_FILE, record)
        p.status = "done"
        ran.append(p.name)
        log(f"[{p.name}] done in {seconds} s")
    report = write_report(recipe, plans)
    return {"ran": ran, "skipped": [p.name for p in plans if p.name not in ran], "report": report}


def status_lines(recipe: Recipe, source: str = "recipe") -> list[str]:
    """One line per stage: its status, its folder and, when done, its wall time."""
    lines = []
    for p in plan(recipe, source):
        rec = read_stage(p.folder)
        took = f" ({rec['seconds']} s)" if p.status == "done" and "seconds" in rec else ""
        lines.append(f"{p.name:<10} {p.status:<8} {p.folder}{took}")
    return lines
