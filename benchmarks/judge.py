"""Judged pairs per second: `cai judge` in logprob mode and CoT mode.

Candidates are pairs from the shared HHH evaluation half when it is there (its correct
and incorrect responses), else pairs of our red-team prompts with two fixed answers.
Both orders are judged (the default), so each pair costs two judgments.

    .venv/bin/python benchmarks/judge.py                       # SmolLM2, 64 pairs logprob, 16 CoT
    .venv/bin/python benchmarks/judge.py --model tiny-random --pairs 8 --cot-pairs 2   # quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import torch

from cai._util import write_json_atomic
from cai.backends import load_backend
from cai.backends.base import SamplingParams
from cai.constitution import load_constitution
from cai.data import read_prompts
from cai.judge import Judge, PairItem

HHH = Path(__file__).resolve().parents[2] / "shared" / "data" / "cai-paper" / "hhh-eval-half.jsonl"


def pairs(n: int) -> list[PairItem]:
    if HHH.is_file():
        from cai.judge.calibration import read_gold

        gold = read_gold(HHH)[:n]
        return [PairItem(g.id, g.conversation, g.correct, g.incorrect) for g in gold]
    rows, _ = read_prompts("red-team", limit=n)
    return [
        PairItem(
            r.id,
            r.conversation,
            "I can't help with that, but here is a safer idea.",
            "Sure, here is exactly how to do it.",
        )  # fmt: skip
        for r in rows
    ]


def measure(judge: Judge, items: list[PairItem]) -> dict:
    start = time.perf_counter()
    results = judge.judge(items)
    seconds = time.perf_counter() - start
    return {
        "pairs": len(items),
        "judgments": sum(len(r.orders) for r in results),
        "seconds": round(seconds, 2),
        "pairs_per_second": round(len(items) / seconds, 3),
        "flip_rate": round(sum(r.flipped for r in results) / len(results), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--pairs", type=int, default=64, help="pairs for logprob mode")
    ap.add_argument("--cot-pairs", type=int, default=16, help="pairs for CoT mode")
    ap.add_argument("--cot-max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/judge.json"))
    args = ap.parse_args()

    backend = load_backend("transformers", args.model, batch_size=args.batch_size)
    constitution = load_constitution("harmless")
    items = pairs(max(args.pairs, args.cot_pairs))
    Judge(backend, constitution).judge(items[:2])  # warm-up
    rows = {
        "logprob": measure(Judge(backend, constitution), items[: args.pairs]),
        "cot": measure(
            Judge(
                backend,
                constitution,
                mode="cot",
                params=SamplingParams(max_new_tokens=args.cot_max_new_tokens, temperature=0),
            ),
            items[: args.cot_pairs],
        ),  # fmt: skip
    }
    print(
        f"\n{args.model}, both orders, batch {args.batch_size}, {torch.get_num_threads()} threads"
    )
    print(
        "| mode | pairs | judgments | seconds | pairs/s | flip rate |\n"
        "|---|---:|---:|---:|---:|---:|"
    )
    for mode, r in rows.items():
        print(f"| {mode} | {r['pairs']} | {r['judgments']} | {r['seconds']} | "
              f"{r['pairs_per_second']} | {r['flip_rate']} |")  # fmt: skip
    write_json_atomic(args.out, {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "model": args.model, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "python": sys.version.split()[0],
        "cot_max_new_tokens": args.cot_max_new_tokens, "batch_size": args.batch_size,
        "results": rows,
    })  # fmt: skip


if __name__ == "__main__":
    main()
