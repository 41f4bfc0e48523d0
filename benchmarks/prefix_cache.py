"""What reusing the shared prefix's key/value cache saves in the critique stage.

Every critique prompt of a batch begins with the same system prompt and few-shot block
(about 1,200 tokens for the `harmless` constitution). The transformers backend prefills
that block once and copies its cache into every row; this script times the same batch of
critique requests with that reuse on and off.

    .venv/bin/python benchmarks/prefix_cache.py                  # SmolLM2, 16 rows, 32 new tokens
    .venv/bin/python benchmarks/prefix_cache.py --model tiny-random --rows 4   # quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import torch

from cai._util import write_json_atomic
from cai.backends import load_backend
from cai.backends.base import SamplingParams
from cai.constitution import load_constitution
from cai.data import read_prompts
from cai.revise import Reviser


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/prefix_cache.json"))
    args = ap.parse_args()

    backend = load_backend("transformers", args.model, batch_size=args.rows)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.7, seed=0,
                            repetition_penalty=1.1)  # fmt: skip
    reviser = Reviser(backend, load_constitution("harmless"), params)
    rows, _ = read_prompts("red-team", limit=args.rows)
    convs = [
        reviser.prefix + r.conversation
        + [{"role": "assistant", "content": "Sure, here is how to do that."},
           {"role": "user", "content": reviser._request("critique", reviser.plan(r)[0])}]
        for r in rows
    ]  # fmt: skip
    prefix_tokens = backend.count_tokens([reviser.prefix + [{"role": "user", "content": "x"}]])[0]
    results = {}
    for label, min_prefix in (("prefix reuse off", 10**9), ("prefix reuse on", 16)):
        backend.decoder.min_shared_prefix = min_prefix
        backend.decoder.prefixes.clear()
        backend.generate(convs[:2], SamplingParams(max_new_tokens=2))  # warm-up
        backend.decoder.prefixes.clear()
        saved0 = backend.decoder.prefix_tokens_saved
        start = time.perf_counter()
        outs = backend.generate(convs, params)
        seconds = time.perf_counter() - start
        tokens = sum(o[0].num_tokens for o in outs)
        results[label] = {
            "seconds": round(seconds, 2),
            "generated_tokens": tokens,
            "tokens_per_second": round(tokens / seconds, 1),
            "prefill_tokens_not_recomputed": backend.decoder.prefix_tokens_saved - saved0,
        }
    off, on = results["prefix reuse off"], results["prefix reuse on"]
    print(f"\n{args.model}: {args.rows} critique requests sharing a ~{prefix_tokens}-token prefix, "
          f"{args.max_new_tokens} new tokens, {torch.get_num_threads()} threads")  # fmt: skip
    print("| setting | seconds | generated tokens | tok/s | prefill tokens saved |")
    print("|---|---:|---:|---:|---:|")
    for label, r in results.items():
        print(f"| {label} | {r['seconds']} | {r['generated_tokens']} | {r['tokens_per_second']} | "
              f"{r['prefill_tokens_not_recomputed']} |")  # fmt: skip
    print(f"\ntime saved: {off['seconds'] - on['seconds']:.1f} s "
          f"({1 - on['seconds'] / off['seconds']:.0%})")  # fmt: skip
    write_json_atomic(args.out, {"date": dt.datetime.now().isoformat(timespec="seconds"),
                                 "model": args.model, "rows": args.rows,
                                 "prefix_tokens": prefix_tokens, "results": results})  # fmt: skip


if __name__ == "__main__":
    main()
