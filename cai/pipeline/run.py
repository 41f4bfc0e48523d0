"""Running a recipe: stage keys, skip-if-unchanged, resume, status and the report.

Every stage's folder holds ``stage.json``: the stage's key, whether it completed, its wall
time and a digest of its summary. The key hashes the stage's full command config (which
names the folders it reads), the keys of the stages it reads, the content hash of its
constitution and the ``cai`` version. So a stage is skipped when its key matches a
completed ``stage.json``, and a change anywhere reruns exactly the stages that depend on
it: editing one principle changes the revisions key, and through it every later one;
changing DPO's beta changes the DPO key and those of the stages after it that read DPO's
model, while revisions, SFT, judge and reward are skipped.

Models enter keys and job fingerprints by content, never by path: a model made by an
earlier stage through that stage's key (which the pipeline also stores in the model
folder, see ``cai.models.model_identity``), and a folder given by hand (a model or a
dataset that no stage of the recipe makes) through its cheap content identity. So a
retrained SFT model makes the judge sample and judge again rather than resume rows from
the old weights.

A stage planned stale only because an input stage was to run again (its record torn or
incomplete) is skipped after all when that input ran under the same key: a key names the
content, so what the stage read is unchanged.

A stage that reads a stage not in ``run:`` needs that stage's finished output; else the
run stops, before anything loads, with an error that names both. The ``trl:`` settings
of every training stage to run are checked first too.

A training stage never deletes a finished model before its replacement is complete: it
trains into ``<stage>.next`` beside its folder and takes the folder's place only when it
is done. An interrupted stage resumes inside itself: revisions, judge and evaluation with
their own row journals, training from its newest checkpoint in ``<stage>.next`` (when the
key is unchanged).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from cai._util import write_json_atomic
from cai.models import write_identity
from cai.pipeline.plan import (
    STAGE_FILE,
    StagePlan,
    _aside,
    check_plans,
    plan,
    read_stage,
    staging,
)
from cai.pipeline.recipe import Recipe
from cai.pipeline.report import write_report
from cai.pipeline.stages import TRAIN_STAGES, digest, out, run_stage, stage_kind, trains


def recover(folder: Path) -> None:
    """Finish or undo a swap of a training stage's model that a crash interrupted."""
    old, nxt = _aside(folder), staging(folder)
    if not old.exists():
        return
    if folder.exists():
        shutil.rmtree(old)  # the new model is in place; the old one was being removed
    elif read_stage(nxt).get("complete"):
        nxt.rename(folder)
        shutil.rmtree(old)
    else:
        old.rename(folder)


def _prepare(p: StagePlan) -> Path:
    """Make a stage ready to (re)run; return the folder it writes.

    A training stage writes ``<stage>.next``, so the finished model in its folder stays
    whole (and readable) until the new one is complete; a ``.next`` of other settings is
    dropped, one of the same key resumes from its newest checkpoint."""
    if not trains(p.name):
        p.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(p.folder / STAGE_FILE, {"stage": p.name, "key": p.key, "complete": False})
        return p.folder
    work = staging(p.folder)
    rec = read_stage(p.folder)
    if rec and not rec.get("complete") and not work.exists():
        p.folder.rename(work)  # an unfinished run of an older cai, trained in place
    if work.exists() and read_stage(work).get("key") != p.key:
        shutil.rmtree(work)
    if any(work.glob("checkpoint-*")):
        p.config = p.config.model_copy(update={"resume_from_checkpoint": "latest"})
    work.mkdir(parents=True, exist_ok=True)
    write_json_atomic(work / STAGE_FILE, {"stage": p.name, "key": p.key, "complete": False})
    p.config = p.config.model_copy(update={"output": work})
    return work


def _install(p: StagePlan, work: Path, record: dict) -> None:
    """Mark the trained model complete, name it by the stage key, and swap it into place."""
    summary_file = work / "cai_train.json"
    if summary_file.is_file():  # it names the folder the model ends up in
        summary = json.loads(summary_file.read_text())
        summary.get("config", {})["output"] = str(p.folder)
        write_json_atomic(summary_file, summary)
    write_json_atomic(work / STAGE_FILE, record)
    write_identity(work, f"{p.name}:{p.key}")
    old = _aside(p.folder)
    if p.folder.exists():
        if old.exists():
            shutil.rmtree(old)
        p.folder.rename(old)
    work.rename(p.folder)
    if old.exists():
        shutil.rmtree(old)
    p.config = p.config.model_copy(update={"output": p.folder})


def _remade_alike(p: StagePlan, by_name: dict[str, StagePlan]) -> bool:
    """A stage planned stale only because an input stage was to run again, which has now run
    under the same key (a key names content, so its output is the same): still done."""
    rec = read_stage(p.folder)
    inputs_done = all(by_name[d].status == "done" for d in p.deps if d in by_name)
    return rec.get("key") == p.key and bool(rec.get("complete")) and inputs_done


def run_pipeline(recipe: Recipe, source: str = "recipe", log=print) -> dict:
    """Run every stage that is not done; write the report; return the run's record."""
    for name in dict.fromkeys([*TRAIN_STAGES, *filter(trains, recipe.stages())]):
        recover(out(recipe, name))
    plans = plan(recipe, source)
    check_plans(recipe, plans, source)
    ran: list[str] = []
    by_name = {p.name: p for p in plans}
    for p in plans:
        if p.status == "stale" and _remade_alike(p, by_name):
            p.status = "done"
            log(f"[{p.name}] its inputs were made again with the same keys; skipped")
            continue
        if p.status == "done":
            log(f"[{p.name}] unchanged, skipped ({p.folder})")
            continue
        work = _prepare(p)
        into = f"{work}, then replaces {p.folder}" if work != p.folder else str(work)
        log(f"[{p.name}] running ({p.status}) -> {into}")
        start = time.perf_counter()
        kind = stage_kind(recipe, p.name)
        summary = run_stage(kind, p.config)
        seconds = round(time.perf_counter() - start, 1)
        record = {"stage": p.name, "kind": kind, "key": p.key, "complete": True,
                  "seconds": seconds, "deps": list(p.deps),
                  "digest": digest(kind, summary)}  # fmt: skip
        if work != p.folder:
            _install(p, work, record)
        else:
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
        lines.append(f"{p.name:<14} {p.status:<8} {p.folder}{took}")
    return lines
