"""Every judge scoring mode on the shared HHH half, per packaged model: one table.

Runs ``cai judge calibrate --mode all`` for each model (SmolLM2 with the recipe's
``harmless`` constitution and with ``hhh``; the Qwen models with ``hhh``) on
``../shared/data/cai-paper/hhh-eval-half.jsonl`` (all 219 pairs; the 1.5B Qwen on a seeded
32, since it is 5-10x slower: the issue asks 64, which a 3-hour session on 2 cores could
not fit beside the rest), then collects the tables into
``benchmarks/results/judge-modes.md`` and the reports into ``judge-modes.json``. Each
model's report folder (``report.json``, ``table.md``, ``pairs.jsonl``, ``fits/``) is under
``--out`` (default ``out/judge-modes``).

    .venv/bin/python benchmarks/judge_modes.py > modes.log 2>&1 &          # ~2 h on 2 cores
    .venv/bin/python benchmarks/judge_modes.py --models smollm2-135m --limit 16   # quick
    .venv/bin/python benchmarks/judge_modes.py --collect-only                   # tables only

The fitted rows are 5-fold out of fold: every figure comes from pairs its fit did not see.
Speeds are measured one model at a time; other work on the machine slows them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT.parent / "shared" / "data" / "cai-paper" / "hhh-eval-half.jsonl"
RESULTS = ROOT / "benchmarks" / "results"
MODELS = {  # model -> (extra calibrate flags, judge batch size, constitutions)
    "smollm2-135m": ([], 8, ("harmless", "hhh")),
    "qwen2.5-coder-0.5b": ([], 8, ("hhh",)),
    "qwen2.5-coder-1.5b": (["--sample", "32"], 4, ("hhh",)),
}
"""SmolLM2, the recipe's judge, is measured with the recipe's constitution and with hhh."""


def calibrate(model: str, out: Path, constitution: str, limit: int | None) -> int:
    extra, batch, _ = MODELS.get(model, ([], 8, ()))
    cai = str(Path(sys.executable).parent / "cai")
    cmd = [cai, "judge", "calibrate", "--gold", str(GOLD), "--mode",
           "all", "--constitution", constitution, "--judge-model", model,
           "--judge-batch-size", str(batch), "--output", str(out), *extra]  # fmt: skip
    if limit:
        cmd += ["--limit", str(limit)]
    print("$", " ".join(cmd), flush=True)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def collect(folders: dict[str, Path]) -> None:
    from cai.judge import all_modes_table

    reports, parts = {}, [f"# Judge scoring modes on the shared HHH half ({dt.date.today()})\n"]
    for model, folder in folders.items():
        file = folder / "report.json"
        if not file.is_file():
            parts.append(f"\n## {model}\n\nNo report at {file}.\n")
            continue
        report = json.loads(file.read_text())
        reports[model] = {k: v for k, v in report.items() if k != "modes"} | {
            "modes": {
                m: {k: v for k, v in r.items() if k != "report"} for m, r in report["modes"].items()
            }  # fmt: skip
        }
        parts.append(f"\n## {model}, constitution {report['constitution']}\n\n"
                     f"{all_modes_table(report)}")  # fmt: skip
    (RESULTS / "judge-modes.md").write_text("".join(parts))
    (RESULTS / "judge-modes.json").write_text(json.dumps(reports, indent=1) + "\n")
    print((RESULTS / "judge-modes.md").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--constitutions", nargs="+", default=None,
                    help="Instead of each model's own list (MODELS).")  # fmt: skip
    ap.add_argument("--limit", type=int, default=None, help="Only the first N pairs (a quick run).")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "judge-modes")
    ap.add_argument("--collect-only", action="store_true")
    args = ap.parse_args()
    if not GOLD.is_file():
        sys.exit(f"no gold file at {GOLD}: the shared data is needed")
    runs = [(m, c) for m in args.models
            for c in (args.constitutions or MODELS.get(m, ([], 8, ("hhh",)))[2])]  # fmt: skip
    folders = {f"{m}-{c}": args.out / f"{m}-{c}" for m, c in runs}
    if not args.collect_only:
        for (model, constitution), folder in zip(runs, folders.values()):
            if calibrate(model, folder, constitution, args.limit) != 0:
                print(f"{model} ({constitution}): calibration failed", flush=True)
    collect(folders)


if __name__ == "__main__":
    main()
