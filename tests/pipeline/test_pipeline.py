"""`cai pipeline`: a whole recipe on tiny-random; reruns skip exactly what did not change."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from cai.errors import CaiError
from cai.evaluate.run import slug
from cai.pipeline.hub import push_all
from cai.pipeline.recipe import load_recipe
from cai.pipeline.run import plan, run_pipeline, status_lines
from tests.conftest import REPO

TRL = {"max_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-3}


def recipe_dict(tmp_path, constitution) -> dict:
    tiny = {"batch_size": 8}
    return {
        "name": "tiny-cai",
        "output": str(tmp_path / "run"),
        "constitution": str(constitution),
        "models": {"policy": "tiny-random", "judge": "tiny-random"},
        "run": ["revisions", "sft", "judge", "reward", "dpo", "grpo", "evaluate"],
        "revisions": {"limit": 4, "no_cache": True, "sampling": {"max_new_tokens": 6},
                      "backend": tiny},
        "sft": {"trl": TRL},
        "judge": {"limit": 4, "sampling": {"max_new_tokens": 6}, "judge": tiny},
        "reward": {"min_confidence": 0.0, "trl": TRL},
        "dpo": {"trl": {**TRL, "beta": 0.1}},
        "grpo": {"limit": 4, "trl": {"max_steps": 1, "per_device_train_batch_size": 2,
                                      "num_generations": 2, "max_completion_length": 6}},
        "evaluate": {"limit": 2, "batch_size": 8, "bootstrap": 100,
                     "sampling": {"max_new_tokens": 6}},
    }  # fmt: skip


def write(path, data) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture()
def setup(tmp_path):
    constitution = tmp_path / "harmless.yaml"
    shutil.copyfile(REPO / "constitutions" / "harmless.yaml", constitution)
    data = recipe_dict(tmp_path, constitution)
    path = tmp_path / "recipe.yaml"
    write(path, data)
    return path, data, constitution


@pytest.mark.hostile("SFT retrained, then judge and evaluate rerun: in the pipeline")
def test_recipe_runs_then_skips_then_reruns_only_what_changed(setup, tmp_path):
    path, data, constitution = setup
    first = run_pipeline(load_recipe(path), str(path), log=lambda *_: None)
    assert first["ran"] == data["run"]
    report = (first["report"] / "README.md").read_text()
    assert "## Stages" in report and "## Evaluation" in report and "## AI feedback" in report
    assert (first["report"] / "toxicity.png").is_file()
    lines = status_lines(load_recipe(path), str(path))
    assert all(" done " in line for line in lines), lines
    evaluated = json.loads((tmp_path / "run" / "evaluate" / "metrics.json").read_text())["models"]
    assert len(evaluated) == 4  # the base, then SFT, DPO and GRPO: before and after each step

    again = run_pipeline(load_recipe(path), str(path), log=lambda *_: None)
    assert again["ran"] == [] and again["skipped"] == data["run"]

    plans = push_all(load_recipe(path), "me", dry_run=True)  # no network: what would be sent
    assert [p["repo_id"] for p in plans] == ["me/tiny-cai-revisions", "me/tiny-cai-preferences",
                                             "me/tiny-cai-grpo"]  # fmt: skip
    model_card = (tmp_path / "run" / "grpo" / "README.md").read_text()
    assert "https://huggingface.co/datasets/me/tiny-cai-preferences" in model_card
    data_card = (tmp_path / "run" / "revisions" / "README.md").read_text()
    assert "https://huggingface.co/me/tiny-cai-grpo" in data_card
    assert any(f["path"] == "model.safetensors" for f in plans[2]["files"])
    push_all(load_recipe(path), "me", dry_run=True)  # linking twice keeps one section
    assert model_card.count("## Related repos") == 1
    assert (tmp_path / "run" / "grpo" / "README.md").read_text().count("## Related repos") == 1

    data["dpo"]["trl"]["beta"] = 0.2  # only DPO and what reads its model
    write(path, data)
    statuses = {p.name: p.status for p in plan(load_recipe(path))}
    assert statuses == {"revisions": "done", "sft": "done", "judge": "done", "reward": "done",
                        "dpo": "stale", "grpo": "stale", "evaluate": "stale"}  # fmt: skip
    beta = run_pipeline(load_recipe(path), str(path), log=lambda *_: None)
    assert beta["ran"] == ["dpo", "grpo", "evaluate"]
    saved = json.loads((tmp_path / "run" / "dpo" / "cai_train.json").read_text())
    assert saved["config"]["trl"]["beta"] == 0.2
    # evaluate answered again with the retrained DPO and GRPO models (their old answers set
    # aside), and resumed the unchanged base and SFT models' answers
    answers = tmp_path / "run" / "evaluate" / "responses"
    answered_again = {d.name for d in answers.iterdir() if any(d.glob("rows.*.jsonl"))}
    assert answered_again == {slug(str(tmp_path / "run" / s)) for s in ("dpo", "grpo")}

    text = constitution.read_text()
    c = yaml.safe_load(text)
    c["principles"][0]["critique"] += " Be specific."  # edit one principle
    write(constitution, c)
    edited = run_pipeline(load_recipe(path), str(path), log=lambda *_: None)
    assert edited["ran"] == data["run"]  # revisions and every stage after it


def test_an_interrupted_stage_is_partial_and_reruns(setup):
    path, data, _ = setup
    data["run"] = ["revisions"]
    write(path, data)
    recipe = load_recipe(path)
    (p,) = plan(recipe)
    p.folder.mkdir(parents=True)
    (p.folder / "stage.json").write_text(json.dumps({"key": p.key, "complete": False}))
    assert plan(recipe)[0].status == "partial"
    assert run_pipeline(recipe, str(path), log=lambda *_: None)["ran"] == ["revisions"]


def test_a_training_stage_killed_after_a_checkpoint_resumes_from_it(setup, monkeypatch):
    import transformers

    path, data, _ = setup
    data["run"] = ["revisions", "sft"]
    data["sft"] = {"trl": {**TRL, "max_steps": 4, "save_strategy": "steps", "save_steps": 2}}
    write(path, data)
    recipe = load_recipe(path)
    save = transformers.Trainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise KeyboardInterrupt  # the process is killed right after its first checkpoint

    monkeypatch.setattr(transformers.Trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(recipe, str(path), log=lambda *_: None)
    monkeypatch.undo()
    assert [p.status for p in plan(recipe)] == ["done", "partial"]

    assert run_pipeline(recipe, str(path), log=lambda *_: None)["ran"] == ["sft"]
    summary = json.loads((plan(recipe)[1].folder / "cai_train.json").read_text())
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert [h["step"] for h in summary["log_history"] if "loss" in h] == [1, 2, 3, 4]


def test_recipe_errors_name_the_stage_and_the_field(setup):
    path, data, _ = setup
    data["dpo"]["no_such_field"] = 1
    write(path, data)
    with pytest.raises(CaiError, match=r"stage 'dpo': field 'no_such_field': unknown field"):
        plan(load_recipe(path), str(path))
    del data["dpo"]["no_such_field"]
    data["sft"]["dataset"] = "elsewhere"
    write(path, data)
    with pytest.raises(CaiError, match=r"stage 'sft': field 'dataset' is set by the pipeline"):
        plan(load_recipe(path), str(path))
    data["run"] = ["revisions", "nonsense"]
    write(path, data)
    with pytest.raises(CaiError, match=r"recipe.yaml: field 'run.1'"):
        load_recipe(path)


def test_shipped_recipes_validate():
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        plans = plan(load_recipe(path), str(path))
        assert [p.name for p in plans] == load_recipe(path).stages()


def test_iterative_rounds_cache_per_round(setup, tmp_path):
    """Two rounds of sample, judge, optimise (round 2 with KTO): a rerun skips both;
    changing round 2's settings reruns only round 2's training and the evaluation."""
    path, data, _ = setup
    tiny = {"batch_size": 8}
    data["run"] = ["evaluate"]
    data["rounds"] = 2
    data["iterate"] = {
        "method": "dpo",
        "judge": {"limit": 4, "sampling": {"max_new_tokens": 6}, "judge": tiny,
                  "policy": tiny},
        "train": {"trl": {**TRL, "beta": 0.1}},
        "per_round": {2: {"method": "kto"}},
    }  # fmt: skip
    write(path, data)
    names = ["round1-judge", "round1-train", "round2-judge", "round2-train", "evaluate"]
    first = run_pipeline(load_recipe(path), str(path), log=lambda *_: None)
    assert first["ran"] == names
    run = tmp_path / "run"
    r1 = json.loads((run / "round1-train" / "cai_train.json").read_text())
    r2 = json.loads((run / "round2-train" / "cai_train.json").read_text())
    assert r1["kind"] == "dpo" and r2["kind"] == "kto"
    assert r1["config"]["model"] == "tiny-random"  # round 1 starts from the base policy
    assert r2["config"]["model"] == str(run / "round1-train")  # round 2 from round 1's
    assert r2["config"]["dataset"] == str(run / "round2-judge")
    judged = [json.loads((run / f"round{k}-judge" / "run.json").read_text()) for k in (1, 2)]
    assert judged[0]["settings"]["policy"]["model"] == "tiny-random"
    assert judged[1]["settings"]["policy"]["model"] == str(run / "round1-train")
    seeds = [j["settings"]["sampling"]["seed"] for j in judged]
    assert seeds[0] != seeds[1]  # fresh samples each round
    evaluated = json.loads((run / "evaluate" / "metrics.json").read_text())["models"]
    assert len(evaluated) == 3  # the base, then each round's policy
    report = (first["report"] / "README.md").read_text()
    assert "## Iterative rounds" in report
    rounds_table = report.split("## Iterative rounds")[1].split("\n## ")[0]
    assert "| 1 | dpo |" in rounds_table and "| 2 | kto |" in rounds_table

    again = run_pipeline(load_recipe(path), str(path), log=lambda *_: None)
    assert again["ran"] == [] and again["skipped"] == names

    data["iterate"]["per_round"][2]["train"] = {"trl": {"beta": 0.2}}
    write(path, data)
    statuses = {p.name: p.status for p in plan(load_recipe(path))}
    assert statuses == {"round1-judge": "done", "round1-train": "done", "round2-judge": "done",
                        "round2-train": "stale", "evaluate": "stale"}  # fmt: skip
    changed = run_pipeline(load_recipe(path), str(path), log=lambda *_: None)
    assert changed["ran"] == ["round2-train", "evaluate"]
    r2 = json.loads((run / "round2-train" / "cai_train.json").read_text())
    assert r2["config"]["trl"]["beta"] == 0.2


def test_per_round_settings_must_name_a_round(setup):
    path, data, _ = setup
    data["rounds"] = 1
    data["iterate"] = {"per_round": {3: {"method": "orpo"}}}
    write(path, data)
    with pytest.raises(CaiError, match=r"per_round names round\(s\) \[3\], but rounds is 1"):
        load_recipe(path)


def _round_plan(path, data, **iterate):
    data = {**data, "run": ["evaluate"], "rounds": 2, "iterate": iterate}
    write(path, data)
    return {p.name: p for p in plan(load_recipe(path))}


def test_round_settings_reach_each_round_and_a_method_change_reruns_it(setup):
    path, data, _ = setup
    data["judge"] = {"num_candidates": 3, "sampling": {"seed": 7, "max_new_tokens": 6}}
    data["dpo"] = {"trl": {"beta": 0.3}}
    base = _round_plan(path, data, method="dpo")
    judge2, train1 = base["round2-judge"].config, base["round1-train"].config
    assert judge2.num_candidates == 3 and judge2.sampling.max_new_tokens == 6
    assert base["round1-judge"].config.sampling.seed == 8 and judge2.sampling.seed == 9
    assert train1.trl["beta"] == 0.3  # a dpo round starts from the recipe's dpo section
    keys = {m: _round_plan(path, data, method="dpo", per_round={2: {"method": m}})
            for m in ("dpo", "ipo", "orpo", "simpo", "kto")}  # fmt: skip
    assert len({k["round2-train"].key for k in keys.values()}) == 5  # each method its own key
    assert len({k["round1-train"].key for k in keys.values()}) == 1  # round 1 untouched
    ipo = keys["ipo"]["round2-train"].config
    assert ipo.trl["loss_type"] == ["ipo"] and type(ipo).__name__ == "DPORunConfig"
    assert type(keys["kto"]["round2-train"].config).__name__ == "KTORunConfig"
    assert "beta" not in keys["orpo"]["round2-train"].config.trl  # the dpo section is dpo's


def test_a_round_must_sample_from_its_policy(setup):
    path, data, _ = setup
    data["judge"] = {"num_candidates": None}
    with pytest.raises(CaiError, match=r"stage 'round1-judge': field 'num_candidates'"):
        _round_plan(path, data)
    data["judge"] = {"verify_revisions": 0.5}
    with pytest.raises(CaiError, match=r"stage 'round1-judge': field 'verify_revisions'"):
        _round_plan(path, data)


def test_iterate_without_rounds_is_an_error(setup):
    path, data, _ = setup
    data["iterate"] = {"method": "kto"}
    write(path, data)
    with pytest.raises(CaiError, match="iterate is set but rounds is 0"):
        load_recipe(path)


def test_a_stage_whose_input_is_remade_under_the_same_key_is_not_rerun(setup):
    """Revisions run again under the same key (its record was torn): SFT, which read the
    same content, is still done; only revisions runs."""
    path, data, _ = setup
    data["run"] = ["revisions", "sft"]
    write(path, data)
    recipe = load_recipe(path)
    assert run_pipeline(recipe, str(path), log=lambda *_: None)["ran"] == ["revisions", "sft"]
    first = plan(recipe)[0]
    (first.folder / "stage.json").write_text(json.dumps({"key": first.key, "complete": False}))
    assert [p.status for p in plan(recipe)] == ["partial", "stale"]
    again = run_pipeline(recipe, str(path), log=lambda *_: None)
    assert again["ran"] == ["revisions"] and again["skipped"] == ["sft"]
    assert [p.status for p in plan(recipe)] == ["done", "done"]
