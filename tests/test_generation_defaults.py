"""Generation defaults per model family: command line > YAML > model registry > global
default, and provenance records the resolved values."""

from __future__ import annotations

import json

import pytest

from cai import models
from cai.config import ReviseConfig, SamplingConfig, load_config

REGISTRY = {
    "top_p": 0.5,
    "min_p": 0.1,
    "repetition_penalty": 1.1,
    "critique_temperature": 0.2,
    "few_shot": False,
}


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setitem(models.GENERATION_DEFAULTS, "tiny-random", dict(REGISTRY))


def test_registry_fills_only_what_the_user_did_not_set(registry, tmp_path):
    p = SamplingConfig().params(model="tiny-random")
    assert (p.top_p, p.min_p, p.repetition_penalty) == (0.5, 0.1, 1.1)
    assert p.temperature == SamplingConfig().temperature  # not in the registry: the default
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("sampling: {top_p: 0.8}\n")
    cfg = load_config(ReviseConfig, yaml_file, {"sampling": {"min_p": 0.0}})
    p = cfg.sampling.params(model="tiny-random")
    assert (p.top_p, p.min_p, p.repetition_penalty) == (0.8, 0.0, 1.1)  # YAML, flag, registry
    cfg = load_config(ReviseConfig, yaml_file, {"sampling": {"top_p": 0.95}})
    assert cfg.sampling.params(model="tiny-random").top_p == 0.95  # the flag beats the YAML


def test_no_registry_for_unknown_models_and_no_penalty_on_servers(registry):
    assert SamplingConfig().params(model="some/hub-model") == SamplingConfig().params()
    assert SamplingConfig().params(model="tiny-random", backend="vllm").repetition_penalty == 1.0


def test_a_trained_folder_takes_its_base_models_family(registry, tmp_path):
    (tmp_path / "cai_train.json").write_text(json.dumps({"config": {"model": "tiny-random"}}))
    assert models.packaged_base(str(tmp_path)) == "tiny-random"
    assert models.generation_defaults(str(tmp_path))["min_p"] == 0.1
    assert models.packaged_base(str(tmp_path / "missing")) is None


def test_revisions_provenance_records_the_resolved_settings(registry, cai, tmp_path):
    out = tmp_path / "out"
    args = ["generate-revisions", "--model", "tiny-random", "--limit", "2", "--max-new-tokens",
            "4", "--no-cache", "--no-quality", "-o"]  # fmt: skip
    res = cai(*args, out, "--min-p", "0.02")
    assert res.code == 0, res.err
    row = json.loads((out / "rows.jsonl").read_text().splitlines()[0])["row"]
    prov = row["provenance"]
    assert prov["sampling"]["min_p"] == 0.02 and prov["sampling"]["top_p"] == 0.5
    assert prov["stage_temperatures"]["critique"] == 0.2
    assert prov["stage_temperatures"]["revision"] == prov["sampling"]["temperature"]
    assert prov["few_shot"] is False  # the registry's
    res = cai(*args, tmp_path / "out2", "--temperature", "0.0", "--few-shot")
    assert res.code == 0, res.err
    row = json.loads((tmp_path / "out2" / "rows.jsonl").read_text().splitlines()[0])["row"]
    assert row["provenance"]["few_shot"] is True  # given beats the registry
    assert row["provenance"]["stage_temperatures"] == {"initial": 0.0, "critique": 0.0,
                                                       "revision": 0.0}  # fmt: skip
