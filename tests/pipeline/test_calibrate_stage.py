"""The pipeline's judge stages take the recipe's judge model and any engine a section
gives: calibrate (``CalibrateConfig``, shared with `cai judge calibrate`), the GRPO judge
reward and evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cai.config import BackendConfig, CalibrateConfig
from cai.errors import CaiError
from cai.pipeline import Recipe, load_recipe
from cai.pipeline.stages import digest, run_stage, stage_config
from tests.conftest import REPO
from tests.openai_server import serve_as

SERVED = "served-judge"


def recipe(tmp_path, **sections) -> Recipe:
    data = {"name": "t", "output": str(tmp_path / "run"), "run": ["calibrate", "grpo", "evaluate"],
            "models": {"policy": "tiny-random", "judge": SERVED}}  # fmt: skip
    return Recipe.model_validate({**data, **sections})


def gold_file(path: Path) -> str:
    rows = [{"prompt": f"Question {i}?", "chosen": "A kind answer.", "rejected": "Go away."}
            for i in range(2)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_calibrate_runs_on_the_engine_its_section_gives(tmp_path):
    pytest.importorskip("httpx")
    with serve_as(SERVED) as server:
        section = {"gold": gold_file(tmp_path / "gold.jsonl"), "verbatim": False,
                   "judge": {"backend": "openai", "base_url": [server.base_url]}}  # fmt: skip
        cfg, _ = stage_config(recipe(tmp_path, calibrate=section), "calibrate")
        assert isinstance(cfg, CalibrateConfig)
        assert (cfg.judge.backend, cfg.judge.model) == ("openai", SERVED)  # the recipe's judge
        assert cfg.output == tmp_path / "run" / "calibrate"
        report = run_stage("calibrate", cfg)
        assert server.requests == 2 * 2  # two gold pairs, both orders
    assert report["n"] == 2 and report["judge_model"] == SERVED
    assert (tmp_path / "run" / "calibrate" / "report.json").is_file()


def test_calibrate_is_skipped_with_a_reason_when_the_gold_file_is_absent(tmp_path):
    missing = tmp_path / "no-such-gold.jsonl"
    cfg, _ = stage_config(recipe(tmp_path, calibrate={"gold": str(missing)}), "calibrate")
    summary = run_stage("calibrate", cfg)
    assert digest("calibrate", summary) == {"skipped": f"no gold file at {missing}"}


def test_calibrate_needs_the_recipe_to_name_its_gold_file(tmp_path):
    assert CalibrateConfig.model_fields["gold"].is_required()  # no default outside the repo
    with pytest.raises(CaiError, match="stage 'calibrate': field 'gold'"):
        stage_config(recipe(tmp_path), "calibrate")


def test_the_shipped_recipe_names_the_shared_gold_file():
    cfg, _ = stage_config(load_recipe(REPO / "recipes" / "smollm2-cai.yaml"), "calibrate")
    assert cfg.gold == Path("../shared/data/cai-paper/hhh-eval-half.jsonl")
    assert cfg.judge == BackendConfig(model="smollm2-135m") and cfg.sample is None  # all 219
    assert cfg.mode == "likelihood"  # the recipe's judging section


def test_the_judge_reward_and_evaluate_take_the_recipes_judge_and_a_sections_engine(tmp_path):
    openai = {"backend": "openai", "base_url": ["http://h/v1"]}
    r = recipe(tmp_path, evaluate={"judge": openai})
    grpo, _ = stage_config(r, "grpo")
    assert [(s.kind, s.judge) for s in grpo.rewards] == [("judge", BackendConfig(model=SERVED))]
    evaluate, _ = stage_config(r, "evaluate")
    assert (evaluate.judge.backend, evaluate.judge.model) == ("openai", SERVED)
    assert evaluate.judge.base_url == ["http://h/v1"]


def test_the_recipes_judging_section_reaches_every_stage_that_judges(tmp_path):
    sections = {"judging": {"mode": "pointwise", "scale": 2.0},
                "calibrate": {"gold": gold_file(tmp_path / "gold.jsonl")},
                "run": ["judge", "calibrate", "grpo", "evaluate"]}  # fmt: skip
    r = recipe(tmp_path, **sections)
    for stage in ("judge", "calibrate", "evaluate"):
        cfg, _ = stage_config(r, stage)
        assert (cfg.mode, cfg.scale) == ("pointwise", 2.0), stage
    grpo, _ = stage_config(r, "grpo")
    (reward,) = grpo.rewards
    assert (reward.kind, reward.mode, reward.scale) == ("judge", "pointwise", 2.0)
    own, _ = stage_config(recipe(tmp_path, **sections, judge={"mode": "contrast"}), "judge")
    assert own.mode == "contrast"  # a stage's own section still wins


def test_the_judging_mode_and_the_ensemble_file_are_in_the_stage_keys(tmp_path):
    from cai.judge import Ensemble
    from cai.pipeline.plan import plan

    weights = tmp_path / "w.json"
    Ensemble(("pointwise",), (1.0,), {}).save(weights)
    base = {"calibrate": {"gold": gold_file(tmp_path / "gold.jsonl")}, "run": ["calibrate"]}

    def key(**judging) -> str:
        (stage,) = plan(recipe(tmp_path, **base, judging=judging))
        return stage.key

    first = key(mode="ensemble", ensemble=str(weights))
    assert key(mode="pointwise") != first
    Ensemble(("pointwise",), (2.0,), {}).save(weights)  # same path, new weights
    assert key(mode="ensemble", ensemble=str(weights)) != first


def test_a_bad_judging_field_names_itself(tmp_path):
    with pytest.raises(Exception, match="judging"):
        recipe(tmp_path, judging={"mode": "coin-flip"})
