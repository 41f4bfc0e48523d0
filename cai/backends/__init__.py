"""Backends behind one small protocol (see ``cai.backends.base``).

The map below names each backend's class as a string, so that torch, vLLM and the HTTP
client are imported only when that backend is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from cai.backends.base import Backend, Conversation, Generation, SamplingParams
from cai.errors import CaiError

BACKENDS: dict[str, str] = {
    "transformers": "cai.backends.hf:TransformersBackend",
    "vllm": "cai.backends.vllm:VLLMBackend",
    "openai": "cai.backends.openai:OpenAIBackend",
}

__all__ = ["BACKENDS", "Backend", "Conversation", "Generation", "SamplingParams", "load_backend"]


def load_backend(name: str, model: str, **options: Any) -> Backend:
    """Create backend ``name`` for ``model``; ``options`` go to its constructor."""
    if name not in BACKENDS:
        raise CaiError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module_name, cls_name = BACKENDS[name].split(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)(model, **options)
