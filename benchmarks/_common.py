"""Helpers shared by the benchmarks: profile a callable, print the profile, write JSON.

``profile_call(fn)`` runs ``fn`` under torch.profiler and splits self CPU time into op
families (``CATEGORIES``; an op inside a matmul, attention or sampling op counts toward
that family) and the top ops by self CPU time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from torch.profiler import ProfilerActivity, profile

from cai._util import write_json_atomic

T = TypeVar("T")

CATEGORIES: dict[str, tuple[str, ...]] = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul"),
    "attention": ("scaled_dot_product", "flash_attention", "efficient_attention"),
    "cat/copy": ("aten::cat", "aten::copy_", "aten::index_select", "aten::index_copy"),
    "sampling": ("aten::topk", "aten::sort", "aten::softmax", "aten::_softmax",
                 "aten::multinomial", "aten::exponential_", "aten::log_softmax",
                 "aten::_log_softmax", "aten::gather", "aten::scatter"),
    "element-wise": ("aten::add", "aten::sub", "aten::mul", "aten::div", "aten::pow",
                     "aten::rsqrt", "aten::mean", "aten::silu", "aten::neg", "aten::where",
                     "aten::exp", "aten::gt", "aten::lt", "aten::eq", "aten::ne", "aten::ge",
                     "aten::le", "aten::masked_fill", "aten::clamp", "aten::sigmoid",
                     "aten::bitwise", "aten::logical", "aten::cos", "aten::sin", "aten::fill_",
                     "aten::isin"),
}  # fmt: skip
# gather/scatter count as sampling: here only the repetition penalty uses them.
COMPOSITE = ("matmul", "attention", "sampling")  # an op inside these counts toward them


def category(name: str) -> str:
    for cat, keys in CATEGORIES.items():
        if cat == "attention" and any(k in name for k in keys):
            return cat
        if any(name == k or name.startswith(k + "_") or name.startswith(k + ".") for k in keys):
            return cat
    return "other"


def event_category(event: Any) -> str:
    """The outermost composite ancestor's family (e.g. aten::t under aten::linear), else own."""
    found, node = None, event
    while node is not None:
        if category(node.name) in COMPOSITE:
            found = category(node.name)
        node = node.cpu_parent
    return found or category(event.name)


def profile_call(fn: Callable[[], T], top: int = 15) -> tuple[T, dict]:
    """Run ``fn`` under torch.profiler; return its result and the self CPU time summary.

    The summary has ``profiled_self_cpu_seconds``, ``share`` (op family -> fraction of
    self CPU time) and ``top_ops`` (op, calls, self_cpu_ms, share), the ``top`` largest.
    """
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        result = fn()
    shares: dict[str, float] = {c: 0.0 for c in [*CATEGORIES, "other"]}
    for ev in prof.events():
        shares[event_category(ev)] += ev.self_cpu_time_total
    total = sum(shares.values()) or 1.0
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]
    return result, {
        "profiled_self_cpu_seconds": round(total / 1e6, 3),
        "share": {k: round(v / total, 4) for k, v in shares.items()},
        "top_ops": [
            {
                "op": e.key,
                "calls": e.count,
                "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 1),
                "share": round(e.self_cpu_time_total / total, 4),
            }
            for e in ops
        ],
    }


def print_profile(p: dict, title: str, note: str | None = None) -> None:
    """Print a ``profile_call`` summary as Markdown: top ops, op families, then ``note``."""
    print(f"\n## Profile: {title} (self CPU time, torch.profiler)\n")
    print("| op | calls | self CPU ms | share |\n|---|---:|---:|---:|")
    for o in p["top_ops"]:
        print(f"| {o['op']} | {o['calls']} | {o['self_cpu_ms']:.1f} | {o['share']:.1%} |")
    print("\n| family | share of self CPU time |\n|---|---:|")
    for k, v in p["share"].items():
        print(f"| {k} | {v:.1%} |")
    if note:
        print(f"\n{note}")


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON atomically."""
    write_json_atomic(path, data)


def machine_info(model: str) -> dict:
    """Date, model, library versions, threads and OpenMP settings, for every result file."""
    import datetime as dt
    import platform

    import torch
    import transformers

    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "backend": "transformers",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")},
    }
