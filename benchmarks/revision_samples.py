"""Five random rows before and after the study, printed whole, for reading.

    .venv/bin/python benchmarks/revision_samples.py BEFORE_FOLDER AFTER_FOLDER [--n 5] [--seed 0]

Picks N prompts that both generate-revisions outputs answered (seeded), and prints each
prompt's initial answer, critique(s) and revision from both, with the quality flags of
each row (from ``quality_rows.jsonl`` where ``cai quality`` wrote one, so that rows a gate
dropped show theirs too). ``benchmarks/results/revision_samples.md`` holds the study's:
its baseline (the issue's fluent sampling, worked examples on, the templates before the
study) against the shipped defaults.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def show(label: str, row: dict) -> list[str]:
    q = row.get("quality") or {}
    lines = [f"**{label}** (flags: {', '.join(q.get('flags') or []) or 'none'}; revision "
             f"NLL {(q.get('nll') or {}).get('revision')})", "",
             f"- initial answer: {row['initial_response']!r}"]  # fmt: skip
    for step in row["trace"]["rounds"]:
        lines.append(f"- critique ({step['principle_id']}): {step['critique']!r}")
    lines += [f"- revision: {row['revision']!r}", ""]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import datasets

    def rows(folder: Path) -> dict[str, dict]:
        ds = datasets.load_dataset(str(folder))
        by_prompt = {r["prompt"][-1]["content"]: r for split in ds.values() for r in split}
        from cai.quality.folder import read_revision_rows

        for r in read_revision_rows(folder):  # gated rows too, without their quality column
            by_prompt.setdefault(r["prompt"][-1]["content"], r)
        scored = folder / "quality_rows.jsonl"  # `cai quality` records every row, gated too
        if scored.is_file():
            records = {x["id"]: x for x in map(json.loads, scored.read_text().splitlines())}
            for r in by_prompt.values():
                r["quality"] = records.get(r["id"], r.get("quality"))
        return by_prompt

    before, after = rows(args.before), rows(args.after)
    shared = sorted(set(before) & set(after))
    out = [f"# {args.n} random rows: `{args.before}` (before) and `{args.after}` (after)", ""]
    for prompt in random.Random(args.seed).sample(shared, min(args.n, len(shared))):
        out += [f"## {prompt}", ""] + show("before", before[prompt]) + show("after", after[prompt])
    print("\n".join(out))


if __name__ == "__main__":
    main()
