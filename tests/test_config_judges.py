"""One way to name a judge and its engine: every config field that names a judge is a
``BackendConfig``; a bare model name, and the older ``judge_model``/``path`` keys, still work."""

from __future__ import annotations

import pytest

from cai.config import (
    BackendConfig,
    CalibrateConfig,
    EvalConfig,
    JudgeConfig,
    RewardSpec,
    load_config,
)
from cai.errors import CaiError

OPENAI = {"backend": "openai", "model": "m", "base_url": ["http://h/v1"]}


@pytest.mark.parametrize(
    ("cls", "extra"),
    [(JudgeConfig, {}), (EvalConfig, {}), (CalibrateConfig, {"gold": "g.jsonl"}),
     (RewardSpec, {"kind": "judge"})],
)  # fmt: skip
def test_every_judge_field_takes_an_engine_or_a_bare_name(cls, extra):
    assert cls(judge="tiny-random", **extra).judge == BackendConfig(model="tiny-random")
    engine = cls(judge=OPENAI, **extra).judge
    assert (engine.backend, engine.model, engine.base_url) == ("openai", "m", ["http://h/v1"])


def test_a_judge_reward_named_by_path_moves_to_judge():
    spec = RewardSpec(kind="judge", path="tiny-random")
    assert (spec.path, spec.judge) == (None, BackendConfig(model="tiny-random"))
    assert RewardSpec(kind="model", path="out/reward").path == "out/reward"  # others keep path
    with pytest.raises(ValueError, match="not also `path`"):
        RewardSpec(kind="judge", path="a", judge="b")
    with pytest.raises(ValueError, match="kind judge"):
        RewardSpec(kind="toxicity", judge="b")


def test_calibrate_takes_the_older_judge_model_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("gold: g.jsonl\njudge_model: tiny-random\n")
    assert load_config(CalibrateConfig, config).judge == BackendConfig(model="tiny-random")
    with pytest.raises(CaiError, match="'gold'"):
        load_config(CalibrateConfig, None, {})
