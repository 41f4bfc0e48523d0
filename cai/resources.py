"""Where the shipped constitutions and prompt templates live.

In a wheel they are package data under ``cai/_data/``; in an editable install (or a
checkout on ``PYTHONPATH``) they are the top-level ``constitutions/`` and ``prompts/``
folders of the repository.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def data_dir(kind: str) -> Path:
    """Return the folder of shipped ``constitutions`` or ``prompts``."""
    if kind not in ("constitutions", "prompts"):
        raise ValueError(f"unknown data kind {kind!r}")
    packaged = resources.files("cai") / "_data" / kind
    if packaged.is_dir():
        return Path(os.fspath(packaged))
    repo = Path(__file__).resolve().parent.parent / kind
    if repo.is_dir():
        return repo
    raise FileNotFoundError(
        f"cai's shipped {kind}/ folder is missing from this install; reinstall the package"
    )


def cache_dir() -> Path:
    """The cache folder: ``$CAI_CACHE`` if set, else ``~/.cache/cai``."""
    env = os.environ.get("CAI_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "cai"
    path.mkdir(parents=True, exist_ok=True)
    return path
