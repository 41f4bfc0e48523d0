"""The whole method, end to end on SmolLM2, through ``cai pipeline`` and its shipped recipe.

    .venv/bin/python benchmarks/e2e.py > e2e.log 2>&1 &      # recipes/smollm2-cai.yaml (~30 min)
    .venv/bin/python benchmarks/e2e.py --fresh               # ignore earlier stage outputs

It runs ``recipes/smollm2-cai.yaml``: generate-revisions on the 75 red-team prompts
(quality gate on), SFT, two candidates per prompt sampled from the SFT model and judged
(both orders) with a held-out quarter, judge calibration on the HHH pairs where present,
a reward model, DPO, GRPO with the reward model, and evaluation of the base, SFT, DPO
and GRPO models. It prints each stage's wall time, the reward model's accuracy on the
held-out AI preferences, DPO's reward margins over steps, GRPO's reward and the
evaluation table, and writes them to
``benchmarks/results/e2e.json``. Stage outputs stay under the recipe's output folder, so
a second run skips every unchanged stage (use ``--fresh`` to time them all again).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from cai.pipeline.recipe import load_recipe
from cai.pipeline.run import run_pipeline

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_info, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--recipe", type=Path, default=Path("recipes/smollm2-cai.yaml"))
    ap.add_argument("--fresh", action="store_true", help="delete the recipe's output first")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/e2e.json"))
    a = ap.parse_args()
    recipe = load_recipe(a.recipe)
    if a.fresh and recipe.output.exists():
        shutil.rmtree(recipe.output)
    result = run_pipeline(recipe, str(a.recipe))
    report = json.loads((result["report"] / "report.json").read_text())
    stages = report["stages"]
    results = {"machine": machine_info(recipe.models.policy), "recipe": str(a.recipe),
               "ran": result["ran"], "skipped": result["skipped"],
               "seconds": {k: v.get("seconds") for k, v in stages.items()},
               "digests": {k: v.get("digest") for k, v in stages.items()}}  # fmt: skip
    dpo_log = recipe.output / "dpo" / "cai_train.json"
    if dpo_log.is_file():
        results["dpo_reward_margins"] = json.loads(dpo_log.read_text()).get("reward_margins")
    results["total_seconds"] = round(sum(s or 0 for s in results["seconds"].values()), 1)
    write_json(a.out, results)
    print("\n| stage | seconds |\n|---|---:|")
    for k, v in results["seconds"].items():
        print(f"| {k} | {v} |")
    print(f"| total | {results['total_seconds']} |")
    rm = results["digests"].get("reward") or {}
    print(f"\nreward model held-out accuracy: {rm.get('eval_accuracy')} on {rm.get('eval_rows')} "
          "pairs")  # fmt: skip
    margins = results.get("dpo_reward_margins") or []
    print(f"DPO reward margins by step: {[round(m, 3) for m in margins]}")
    print(f"GRPO reward: {(results['digests'].get('grpo') or {}).get('reward')}")
    print(f"\nreport: {result['report'] / 'README.md'}")


if __name__ == "__main__":
    sys.exit(main())
