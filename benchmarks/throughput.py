"""Generated tokens/s of the transformers backend on CPU, one stream vs batches.

Example:
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/throughput.py --profile

Every setting uses the same prompts, seed and sampling settings; tokens are counted with
``Generation.num_tokens`` (non-pad tokens). ``--profile`` runs one batch under
torch.profiler and splits self CPU time into op families, and times prefill vs decode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from cai.backends import Conversation, SamplingParams, load_backend

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_info, print_profile, profile_call, write_json  # noqa: E402

PROMPTS = [
    "Give me three tips for keeping houseplants alive.", "What is a haiku? Write one about rain.",
    "Explain photosynthesis to a ten-year-old.", "How do I boil an egg so the yolk stays soft?",
    "Suggest a name for a friendly orange cat.", "Why is the sky blue?",
    "Write a two-line poem about autumn leaves.", "What are some good stretches after a walk?",
    "How does a bicycle stay upright?", "Recommend a board game for a family of four.",
    "Retell Cinderella in two sentences.", "How is weather different from climate?",
    "How can I make my morning routine calmer?", "Describe the taste of a ripe mango.",
    "What should I pack for a day at the beach?", "Explain what a prime number is.",
    "Give me a simple recipe for tomato soup.", "How do bees make honey?",
    "Write a short thank-you note to a neighbour.", "What are the planets in our solar system?",
    "How do I start learning to play the guitar?", "Why do leaves change colour in the fall?",
    "Suggest a fun indoor activity for a rainy day.", "What is the water cycle?",
    "How can I remember people's names better?", "Tell me a fun fact about octopuses.",
    "What is a good way to organise a bookshelf?", "Explain how a rainbow forms.",
    "Write a limerick about a sleepy dog.", "How long should I steep green tea?",
    "What are three benefits of reading every day?", "How do magnets work, in simple terms?",
    "Give me ideas for a picnic menu.", "What does a librarian do?",
    "How can I save a little money each month?", "Describe a peaceful mountain lake.",
    "What is the tallest animal in the world?", "How do I write a good to-do list?",
    "Explain what gravity does.", "Suggest a short walking route idea for a park.",
    "What is the origin of the word 'robot'?", "How do I take care of a new succulent?",
    "Write a friendly greeting for a club newsletter.", "Why do cats purr?",
    "What are some easy vegetables to grow at home?", "How does a compass point north?",
    "Give me a riddle and its answer.", "What is the best way to learn new vocabulary?",
    "Describe the sound of the ocean.", "How do clouds form?",
    "What makes a good cup of coffee?", "Explain what a volcano is.",
    "Suggest three songs for a relaxing evening.", "How do I fold a paper airplane?",
    "What is the history of the teddy bear?", "Why is exercise good for the brain?",
    "Write a short story opening about a lighthouse.", "How do penguins stay warm?",
    "What are fractions, with an example?", "How can I be a better listener?",
    "Recommend a hobby that costs very little.", "What is the moon made of?",
    "How do I keep bread fresh longer?", "Describe a cosy winter evening at home.",
]  # fmt: skip


def conversations(n: int) -> list[Conversation]:
    return [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}] for i in range(n)]


def timed_generate(backend: Any, convs: list[Conversation], params: SamplingParams, one: bool):
    start = time.perf_counter()
    if one:  # one stream: conversations one at a time
        gens = [g for c in convs for g in backend.generate([c], params)]
    else:
        gens = backend.generate(convs, params)
    seconds = time.perf_counter() - start
    return sum(g[0].num_tokens for g in gens), seconds


def run_profile(backend: Any, convs: list[Conversation], params: SamplingParams) -> dict:
    backend.batch_size = len(convs)
    tokens, gen_s = timed_generate(backend, convs, params, one=False)
    ids, mask = backend._left_pad(backend.encode(convs))
    prefill = []
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            backend.model(input_ids=ids, attention_mask=mask, logits_to_keep=1)
            prefill.append(time.perf_counter() - start)
    prefill_s = statistics.median(prefill)
    gens, summary = profile_call(lambda: backend.generate(convs, params))
    steps = max(g[0].num_tokens for g in gens)
    return {
        "batch_size": len(convs),
        "prompt_tokens_padded": list(ids.shape),
        "generated_tokens": tokens,
        "generate_seconds_unprofiled": round(gen_s, 3),
        "prefill_seconds": round(prefill_s, 4),
        "decode_steps": steps,
        "decode_seconds_per_step": round((gen_s - prefill_s) / max(1, steps - 1), 4),
        **summary,
    }


def profile_note(p: dict) -> str:
    return (
        f"prompt batch (rows, padded width) {p['prompt_tokens_padded']}; unprofiled generate"
        f" {p['generate_seconds_unprofiled']:.2f}s for {p['generated_tokens']} tokens;"
        f" prefill (one forward) {p['prefill_seconds'] * 1e3:.0f} ms; decode"
        f" ~{p['decode_seconds_per_step'] * 1e3:.0f} ms/step over {p['decode_steps']} steps"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch-sizes", default="1,8,32,64", help="comma list; 1 = one stream")
    ap.add_argument("--num-prompts", type=int, default=64)
    ap.add_argument("--single-stream-prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/throughput.json"))
    ap.add_argument("--profile", action="store_true", help="profile one batch too")
    ap.add_argument("--profile-batch", type=int, default=32)
    args = ap.parse_args()

    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    params = SamplingParams(
        max_new_tokens=args.max_new_tokens, temperature=0.7, repetition_penalty=1.1, seed=args.seed
    )
    convs = conversations(args.num_prompts)
    backend: Any = load_backend("transformers", args.model, batch_size=1)
    backend.batch_size = 4
    backend.generate(convs[:4], SamplingParams(max_new_tokens=4, seed=args.seed))  # warm-up

    rows: list[dict] = []
    for size in sizes:
        one = size == 1
        use = convs[: min(args.single_stream_prompts, len(convs))] if one else convs
        backend.batch_size = size
        tokens, seconds = timed_generate(backend, use, params, one)
        row = {"setting": "1 stream" if one else f"batch {size}", "batch_size": size}
        row |= {"prompts": len(use), "generated_tokens": tokens, "seconds": round(seconds, 3)}
        row["tokens_per_s"] = round(tokens / seconds, 2)
        rows.append(row)
        print(f"[{row['setting']}] {tokens} tokens in {seconds:.1f}s", flush=True)
    base = next((r["tokens_per_s"] for r in rows if r["batch_size"] == 1), None)
    for r in rows:
        r["speedup_vs_batch1"] = round(r["tokens_per_s"] / base, 2) if base else None

    print("\n| setting | prompts | generated tokens | seconds | tokens/s | speed-up vs batch 1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        sp = f"{r['speedup_vs_batch1']:.2f}x" if r["speedup_vs_batch1"] else "n/a"
        print(
            f"| {r['setting']} | {r['prompts']} | {r['generated_tokens']} | {r['seconds']:.1f}"
            f" | {r['tokens_per_s']:.1f} | {sp} |"
        )

    prof = None
    if args.profile:
        prof = run_profile(backend, conversations(args.profile_batch), params)
        print_profile(prof, f"one batch of {prof['batch_size']}", profile_note(prof))

    write_json(
        args.out,
        {
            **machine_info(args.model),
            "sampling": params.to_dict(),
            "num_prompts": args.num_prompts,
            "single_stream_prompts": args.single_stream_prompts,
            "results": rows,
            "profile": prof,
        },
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
