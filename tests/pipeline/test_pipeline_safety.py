"""The pipeline never keeps stale work and never loses finished work.

- A model retrained in place is a new model: judge and evaluate regenerate the rows they
  sampled from it instead of resuming them (``cai.models.model_identity``).
- Bad trl settings stop the run before any stage touches its folder, and a training stage
  that fails leaves the previous model whole (it trains beside it, then swaps).
- A stage whose input stage is not in ``run:`` is refused by name, before anything loads,
  unless that stage's finished output is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from cai import models
from cai.errors import CaiError
from cai.jobs import RowJournal
from cai.pipeline.recipe import load_recipe
from cai.pipeline.run import check_plans, plan, run_pipeline
from tests.conftest import REPO

TRL = {"max_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-3}
QUIET = {"log": lambda *_: None}


def _recipe() -> dict:
    """Revisions then SFT on tiny-random, every path relative (so a copy has the same keys)."""
    return {
        "name": "tiny-safety",
        "output": "run",
        "constitution": "harmless.yaml",
        "models": {"policy": "tiny-random", "judge": "tiny-random"},
        "run": ["revisions", "sft"],
        "revisions": {"limit": 4, "no_cache": True, "sampling": {"max_new_tokens": 6},
                      "backend": {"batch_size": 8}},
        "sft": {"trl": dict(TRL)},
    }  # fmt: skip


def _write(path: Path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _files(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every top-level file of a folder: size, mtime and content hash."""
    return {
        f.name: (f.stat().st_size, f.stat().st_mtime_ns, hashlib.sha256(f.read_bytes()).hexdigest())
        for f in sorted(folder.iterdir())
        if f.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A folder where revisions and SFT ran to completion (built once for the module)."""
    root = tmp_path_factory.mktemp("finished")
    shutil.copyfile(REPO / "constitutions" / "harmless.yaml", root / "harmless.yaml")
    _write(root / "recipe.yaml", _recipe())
    cwd = os.getcwd()
    os.chdir(root)
    try:
        ran = run_pipeline(load_recipe(Path("recipe.yaml")), "recipe.yaml", **QUIET)["ran"]
    finally:
        os.chdir(cwd)
    assert ran == ["revisions", "sft"]
    return root


@pytest.fixture
def work(finished, tmp_path, monkeypatch) -> Path:
    """A private copy of the finished run, as the current folder."""
    dest = tmp_path / "w"
    shutil.copytree(finished, dest)
    monkeypatch.chdir(dest)
    return dest


def _run(data: dict, **kw) -> dict:
    _write(Path("recipe.yaml"), data)
    return run_pipeline(load_recipe(Path("recipe.yaml")), "recipe.yaml", **QUIET, **kw)


# ------------------------------------------------------------------ data is never destroyed


@pytest.mark.hostile("trl `learning_rate: fast`")
def test_a_bad_trl_setting_stops_the_run_before_any_folder_is_touched(work, cai):
    sft, revisions = Path("run/sft"), Path("run/revisions")
    model_before, revisions_before = _files(sft), _files(revisions)
    data = _recipe()
    data["revisions"]["limit"] = 3  # revisions would rerun first: it must not start either
    data["sft"]["trl"]["learning_rate"] = "fast"
    _write(Path("recipe.yaml"), data)
    res = cai("pipeline", "run", "recipe.yaml")
    assert res.code == 2, res.err
    assert "Traceback" not in res.err and len(res.err.strip().splitlines()) == 1
    assert "recipe.yaml: stage 'sft': trl field error: 'learning_rate' = 'fast'" in res.err
    assert _files(sft) == model_before and _files(revisions) == revisions_before
    assert not Path("run/sft.next").exists()

    data["sft"]["trl"] = {**TRL, "learning_rat": 1e-3}  # a typo: named, with the stage
    with pytest.raises(CaiError, match=r"stage 'sft': trl field error: 'learning_rat' is not a fi"):
        _run(data)


def test_yaml_numbers_written_as_1e_5_are_read_as_numbers(work):
    from trl import SFTConfig

    from cai.train.common import trl_args
    from cai.train.config import SFTRunConfig

    cfg = SFTRunConfig(output=Path("x"), trl=yaml.safe_load("learning_rate: 1e-5"))
    assert cfg.trl["learning_rate"] == "1e-5"  # YAML 1.1 reads this as a string
    assert trl_args(SFTConfig, cfg).learning_rate == 1e-5


@pytest.mark.hostile("trl `learning_rate: fast`: never delete finished output first")
def test_a_retrain_that_fails_midway_leaves_the_previous_model_whole(work, monkeypatch):
    import transformers

    sft = Path("run/sft")
    model_before, stage_before = _files(sft), json.loads((sft / "stage.json").read_text())
    identity_before = models.model_identity(str(sft))
    data = _recipe()
    data["sft"]["trl"]["max_steps"] = 3  # a change that makes SFT train again
    calls = []

    def fail_on_second_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed mid-way")
        return step(self, *args, **kwargs)

    step = transformers.Trainer.training_step
    with monkeypatch.context() as m:
        m.setattr(transformers.Trainer, "training_step", fail_on_second_step)
        with pytest.raises(RuntimeError, match="killed mid-way"):
            _run(data)
    assert len(calls) == 2
    assert _files(sft) == model_before  # every file as it was
    assert json.loads((sft / "stage.json").read_text()) == stage_before
    loaded = transformers.AutoModelForCausalLM.from_pretrained(sft)
    assert loaded.config.num_hidden_layers == 2
    assert [p.status for p in plan(load_recipe(Path("recipe.yaml")))] == ["done", "partial"]

    again = _run(data)
    assert again["ran"] == ["sft"]
    stage = json.loads((sft / "stage.json").read_text())
    assert stage["complete"] and stage["key"] != stage_before["key"]
    assert json.loads((sft / "cai_train.json").read_text())["steps"] == 3
    assert not Path("run/sft.next").exists() and not Path("run/sft.old").exists()
    # the new model is named by the stage that made it: the judge's fingerprint sees it
    assert models.model_identity(str(sft)) == f"sft:{stage['key']}" != identity_before


# ------------------------------------------------------------------ missing input stages


@pytest.mark.hostile("`run: [sft]` alone, its input stage missing")
def test_a_stage_whose_input_stage_is_missing_is_named_before_anything_loads(
    tmp_path, monkeypatch, cai
):
    import cai.pipeline.run as run_module

    monkeypatch.chdir(tmp_path)
    shutil.copyfile(REPO / "constitutions" / "harmless.yaml", "harmless.yaml")
    data = {**_recipe(), "run": ["sft"]}

    def no_stage_may_run(*_):
        raise AssertionError("a stage ran")

    monkeypatch.setattr(run_module, "run_stage", no_stage_may_run)
    want = ("stage 'sft' reads the output of 'revisions', which is not in run: and has no "
            "finished output at run/revisions; add 'revisions' to run:")  # fmt: skip
    with pytest.raises(CaiError) as err:
        _run(data)
    assert want in str(err.value)
    assert not Path("run/sft").exists() and not Path("run/sft.next").exists()
    res = cai("pipeline", "run", "recipe.yaml")
    assert res.code == 2 and want in res.err and "Traceback" not in res.err


def test_a_stage_whose_input_stage_has_finished_output_may_run_alone(work):
    data = {**_recipe(), "run": ["sft"]}
    _write(Path("recipe.yaml"), data)
    (p,) = plan(load_recipe(Path("recipe.yaml")))
    assert p.status == "done"  # the same key as when revisions ran beside it
    assert _run(data)["ran"] == []

    data["sft"]["trl"]["max_steps"] = 3  # to run: allowed, its input is there
    _write(Path("recipe.yaml"), data)
    recipe = load_recipe(Path("recipe.yaml"))
    plans = plan(recipe)
    assert [q.status for q in plans] == ["stale"]
    check_plans(recipe, plans, "recipe.yaml")


# ------------------------------------------------------------------ retrained in place


def _tiny_copy(dest: Path) -> Path:
    shutil.copytree(models.resolve_model("tiny-random"), dest)
    return dest


def _retrain_in_place(folder: Path) -> None:
    """Save a different model into the same folder, as a retrain would."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    model.save_pretrained(folder)


def _prompts(path: Path) -> Path:
    rows = [{"id": "a", "prompt": "How do I pick a lock?"}, {"id": "b", "prompt": "Say hi."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.hostile("SFT retrained, then judge and evaluate rerun")
def test_judge_samples_and_judges_again_when_its_model_is_retrained_in_place(tmp_path):
    from cai.config import BackendConfig, JudgeConfig, SamplingConfig
    from cai.judge import run_judge

    m = _tiny_copy(tmp_path / "M")
    engine = BackendConfig(model=str(m), batch_size=4)
    cfg = JudgeConfig(prompts=str(_prompts(tmp_path / "p.jsonl")), output=tmp_path / "judge",
                      num_candidates=2, policy=engine, judge=engine, chunk_size=4,
                      sampling=SamplingConfig(max_new_tokens=4))  # fmt: skip
    first = run_judge(cfg)
    assert first["processed_rows"] == 2
    assert run_judge(cfg)["resumed_rows"] == 2  # unchanged: resumed
    _retrain_in_place(m)
    after = run_judge(cfg)
    assert after["resumed_rows"] == 0 and after["processed_rows"] == 2
    rows, _ = RowJournal(tmp_path / "judge" / "rows.jsonl").read()
    assert {r["provenance"]["policy_model_identity"] for r in rows} == {
        models.model_identity(str(m))
    }


@pytest.mark.hostile("SFT retrained, then judge and evaluate rerun: evaluate")
def test_evaluate_answers_again_when_a_model_is_retrained_in_place(tmp_path, monkeypatch):
    import cai.jobs.job
    from cai.config import EvalConfig, SamplingConfig
    from cai.evaluate.run import generate_responses, load_prompt_sets

    m = _tiny_copy(tmp_path / "M")
    cfg = EvalConfig(models=[str(m)], prompts=[str(_prompts(tmp_path / "p.jsonl"))],
                     output=tmp_path / "eval", batch_size=4,
                     sampling=SamplingConfig(max_new_tokens=4))  # fmt: skip
    results = []
    run_chunks = cai.jobs.job.run_chunks  # the batch-job skeleton's call

    def recording(*args, **kwargs):
        results.append(run_chunks(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(cai.jobs.job, "run_chunks", recording)
    prompts = load_prompt_sets(cfg)
    generate_responses(cfg, str(m), prompts)
    generate_responses(cfg, str(m), prompts)
    assert [(r.resumed, r.processed) for r in results] == [(0, 2), (2, 0)]
    _retrain_in_place(m)
    generate_responses(cfg, str(m), prompts)
    assert (results[-1].resumed, results[-1].processed) == (0, 2)


def test_a_swap_cut_short_by_a_crash_is_finished_or_undone(tmp_path):
    from cai.pipeline.run import recover

    def stage(folder: Path, key: str, complete: bool) -> Path:
        folder.mkdir()
        (folder / "stage.json").write_text(json.dumps({"key": key, "complete": complete}))
        return folder

    sft = tmp_path / "sft"
    stage(tmp_path / "sft.old", "old", True)  # killed after moving the old model aside
    stage(tmp_path / "sft.next", "new", False)  # ... while the new one was unfinished
    recover(sft)
    assert json.loads((sft / "stage.json").read_text())["key"] == "old"
    assert not (tmp_path / "sft.old").exists()

    sft.rename(tmp_path / "sft.old")
    shutil.rmtree(tmp_path / "sft.next")
    stage(tmp_path / "sft.next", "new", True)  # the new model was complete: install it
    recover(sft)
    assert json.loads((sft / "stage.json").read_text())["key"] == "new"
    assert not (tmp_path / "sft.old").exists() and not (tmp_path / "sft.next").exists()


@pytest.mark.hostile("SFT retrained, then judge and evaluate rerun: a policy folder given by hand")
def test_a_model_folder_given_by_hand_enters_the_stage_keys_by_content(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(REPO / "constitutions" / "harmless.yaml", "harmless.yaml")
    policy = _tiny_copy(tmp_path / "my-policy")
    data = {**_recipe(), "run": ["revisions"]}
    data["models"]["policy"] = str(policy)
    _write(Path("recipe.yaml"), data)
    (p,) = plan(load_recipe(Path("recipe.yaml")))
    p.folder.mkdir(parents=True)
    (p.folder / "stage.json").write_text(json.dumps({"key": p.key, "complete": True}))
    assert plan(load_recipe(Path("recipe.yaml")))[0].status == "done"
    _retrain_in_place(policy)  # same path, new weights: the revisions are stale
    assert plan(load_recipe(Path("recipe.yaml")))[0].status == "stale"
