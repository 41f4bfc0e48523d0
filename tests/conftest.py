"""Shared fixtures: the tiny model, the shared data folder and a CLI runner."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

# Tests never need the network: fail fast instead of trying the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(relpath: str) -> Path:
    """A file in ../shared/data, or a clean skip where it is absent."""
    path = SHARED_DATA / relpath
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    return path


@pytest.fixture(scope="session")
def tiny_backend():
    """The transformers backend on the deterministic tiny-random model."""
    from cai.backends import load_backend

    return load_backend("transformers", "tiny-random", batch_size=4)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cai(capsys):
    """Run ``cai ARGS...`` in-process through the real entry point."""
    from cai.cli import main

    def run(*args: str) -> CliResult:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
