"""Generated tokens/s of the critique-and-revise loop: a naive loop vs ``run_revisions``.

Example:
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/revisions.py --profile

Both setups revise the same first N shipped red-team prompts (one round, the ``harmless``
constitution) with the same model, seed, sampling and stop settings, through one loaded
TransformersBackend each:

- naive: one conversation at a time, batch size 1, each turn (initial answer, critique,
  revision) a separate call, as a hand-written loop or LangChain's ConstitutionalChain does;
- cai: ``run_revisions`` with one chunk of N rows, batch size N and no generation cache.

Each runs with and without the constitution's few-shot examples: four measurements, each
in a fresh child process (so peak RSS is per setup); model loading is not timed. Tokens
are ``Generation.num_tokens`` (non-pad, up to the stop) summed over the stages.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cai.backends import SamplingParams
from cai.config import ReviseConfig, load_config
from cai.revise.cleaning import DEFAULT_STOPS
from cai.revise.run import build_reviser, load_rows, run_revisions

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_info, print_profile, profile_call, write_json  # noqa: E402

SETUPS = ("naive", "cai")
TARGET_RATIO = 4.0  # cai tok/s >= 4x the naive loop's, with and without few-shot
TARGET_TOK_S = 150.0  # cai generated tok/s without few-shot
SAMPLING = {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1}  # SmolLM2's defaults


def make_config(args: argparse.Namespace, few_shot: bool, out: Path, n: int) -> ReviseConfig:
    """The revision job both setups run: N red-team prompts, one round, no cache."""
    sampling = {"max_new_tokens": args.max_new_tokens, "seed": args.seed, **SAMPLING}
    job = {"prompts": "red-team", "limit": n, "constitution": "harmless", "rounds": 1}
    job |= {
        "output": out,
        "few_shot": few_shot,
        "no_cache": True,
        "chunk_size": n,
        "quality": False,
    }  # timing the generation only
    backend = {"model": args.model, "batch_size": args.batch_size}
    return load_config(ReviseConfig, overrides={**job, "backend": backend, "sampling": sampling})


def naive(cfg: ReviseConfig, backend: Any) -> dict:
    """One row at a time, batch size 1: three single-conversation generate calls per row."""
    backend.batch_size = 1
    reviser = build_reviser(cfg, backend)
    rows, _ = load_rows(cfg)
    rows, _ = reviser.check_context(rows)
    start = time.perf_counter()
    for i, row in enumerate(rows, 1):
        reviser.revise([row])
        done = sum(s.generated_tokens for s in reviser.stats.values())
        elapsed = time.perf_counter() - start
        print(f"  naive row {i}/{len(rows)}: {done} tokens, {elapsed:.0f}s", file=sys.stderr)
    seconds = time.perf_counter() - start
    stages = {k: vars(v) for k, v in reviser.stats.items()}
    tokens = sum(s["generated_tokens"] for s in stages.values())
    return {"rows": len(rows), "generated_tokens": tokens, "seconds": seconds, "stages": stages}


def batched(cfg: ReviseConfig, backend: Any) -> dict:
    """``run_revisions`` over one chunk of N rows, batch size ``--batch-size``."""
    backend.batch_size = cfg.backend.batch_size
    start = time.perf_counter()
    summary = run_revisions(cfg, backend=backend)
    seconds = time.perf_counter() - start
    return {
        "rows": summary["rows"],
        "generated_tokens": summary["generated_tokens"],
        "seconds": seconds,
        "loop_seconds": summary["seconds"],
        "stages": summary["stages"],
    }


def run_one(args: argparse.Namespace, setup: str, few_shot: bool) -> dict:
    """One measurement in this (child) process; ``setup`` is naive, cai or profile."""
    profiling = setup == "profile"
    n = args.profile_batch if profiling else args.num_prompts
    if profiling:
        args.batch_size = n
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(args, few_shot, Path(tmp) / "out", n)
        backend: Any = cfg.backend.create()
        backend.batch_size = 4  # warm-up, untimed
        hi = [{"role": "user", "content": "Hi"}]
        backend.generate([hi] * 4, SamplingParams(max_new_tokens=4, seed=args.seed))
        saved_before = backend.decoder.prefix_tokens_saved
        if setup == "naive":
            res = naive(cfg, backend)
        elif setup == "cai":
            res = batched(cfg, backend)
        else:
            res, prof = profile_call(lambda: batched(cfg, backend))
            res["profile"] = prof
    res["prefix_tokens_saved"] = backend.decoder.prefix_tokens_saved - saved_before
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def child(args: argparse.Namespace, setup: str, few_shot: bool) -> dict:
    """Run one measurement in a fresh interpreter; its JSON result comes back on stdout."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--model", args.model]
    cmd += ["--num-prompts", str(args.num_prompts), "--max-new-tokens", str(args.max_new_tokens)]
    cmd += ["--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    cmd += ["--profile-batch", str(args.profile_batch), "--one", setup, str(int(few_shot))]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--num-prompts", type=int, default=32, help="first N red-team prompts")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32, help="cai setup's batch size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/revisions.json"))
    ap.add_argument("--profile", action="store_true", help="profile cai without few-shot too")
    ap.add_argument("--profile-batch", type=int, default=8, help="prompts in the profiled run")
    ap.add_argument("--one", nargs=2, metavar=("SETUP", "FEWSHOT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.one:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the result
            res = run_one(args, args.one[0], bool(int(args.one[1])))
        print(json.dumps(res))
        return

    started = time.perf_counter()
    rows: list[dict] = []
    for few_shot in (True, False):
        for setup in SETUPS:
            label = f"{setup}, {'few-shot' if few_shot else 'no few-shot'}"
            print(f"[{label}] running...", flush=True)
            res = child(args, setup, few_shot)
            res |= {"setup": setup, "few_shot": few_shot, "label": label}
            res["seconds"] = round(res["seconds"], 3)
            res["tokens_per_s"] = round(res["generated_tokens"] / res["seconds"], 2)
            res["peak_rss_mb"] = round(res["peak_rss_mb"], 1)
            rows.append(res)
            print(
                f"[{label}] {res['generated_tokens']} tokens in {res['seconds']:.1f}s", flush=True
            )
    for r in rows:
        base = next(b for b in rows if b["setup"] == "naive" and b["few_shot"] == r["few_shot"])
        r["ratio_vs_naive"] = round(r["tokens_per_s"] / base["tokens_per_s"], 2)

    print(
        "\n| setup | few-shot | prompts | generated tokens | seconds | tokens/s "
        "| peak RSS MB | prefix tokens saved | cai ÷ naive |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['setup']} | {'yes' if r['few_shot'] else 'no'} | {r['rows']}"
            f" | {r['generated_tokens']} | {r['seconds']:.1f} | {r['tokens_per_s']:.1f}"
            f" | {r['peak_rss_mb']:.0f} | {r['prefix_tokens_saved']} | {r['ratio_vs_naive']:.2f}x |"
        )
    cai = {r["few_shot"]: r for r in rows if r["setup"] == "cai"}
    met = {
        "ratio_few_shot": cai[True]["ratio_vs_naive"] >= TARGET_RATIO,
        "ratio_no_few_shot": cai[False]["ratio_vs_naive"] >= TARGET_RATIO,
        "tok_s_no_few_shot": cai[False]["tokens_per_s"] >= TARGET_TOK_S,
    }
    print(
        f"\ntargets: cai >= {TARGET_RATIO:.0f}x the naive loop in both runs"
        f" ({cai[True]['ratio_vs_naive']:.2f}x few-shot, {cai[False]['ratio_vs_naive']:.2f}x"
        f" without: {'met' if met['ratio_few_shot'] and met['ratio_no_few_shot'] else 'NOT met'});"
        f" >= {TARGET_TOK_S:.0f} generated tok/s without few-shot"
        f" ({cai[False]['tokens_per_s']:.1f}: {'met' if met['tok_s_no_few_shot'] else 'NOT met'})"
    )

    prof = None
    if args.profile:
        print(f"\n[profile: cai, no few-shot, {args.profile_batch} prompts] running...", flush=True)
        prof = child(args, "profile", False)
        stages = ", ".join(
            f"{k} {s['generated_tokens']} tok in {s['seconds']:.1f}s"
            for k, s in prof["stages"].items()
        )
        gen_s = sum(s["seconds"] for s in prof["stages"].values())
        note = (
            f"profiled run_revisions wall {prof['seconds']:.1f}s (generate calls {gen_s:.1f}s,"
            f" rest {prof['seconds'] - gen_s:.1f}s); stages: {stages};"
            f" prefix tokens saved {prof['prefix_tokens_saved']}"
        )
        print_profile(prof["profile"], f"cai, no few-shot, batch {args.profile_batch}", note)

    write_json(
        args.out,
        {
            **machine_info(args.model),
            "settings": {
                **make_config(args, True, Path("-"), args.num_prompts).model_dump(
                    mode="json", exclude={"output", "few_shot"}
                ),
                "stops": list(DEFAULT_STOPS),
                "profile_batch": args.profile_batch if args.profile else None,
            },
            "targets": {"ratio_vs_naive": TARGET_RATIO, "tokens_per_s_no_few_shot": TARGET_TOK_S},
            "targets_met": met,
            "total_seconds": round(time.perf_counter() - started, 1),
            "results": rows,
            "profile": prof,
        },
    )
    print(f"\nwall time of the whole run: {time.perf_counter() - started:.1f}s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
