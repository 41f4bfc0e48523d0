"""The default toxicity scorer on our labelled sentences: ROC AUC and false-positive rates.

Example:
    .venv/bin/python benchmarks/toxicity.py

Reads ``tests/fixtures/toxicity_labelled.jsonl`` (sentences we wrote: toxic, benign, and benign
sentences that mention identities and sensitive topics), scores them with the packaged
Jigsaw classifier (``cai.scorers.toxicity.JigsawScorer``), and reports the ROC AUC of the
``toxic`` probability, and the false-positive rate at the evaluation threshold (0.5) on all
benign sentences and on the benign identity sentences alone, with the worst of those.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cai._util.stats import roc_auc
from cai.scorers.toxicity import JigsawScorer

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_json  # noqa: E402

LABELLED = Path(__file__).parent.parent / "tests" / "fixtures" / "toxicity_labelled.jsonl"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/toxicity.json"))
    args = ap.parse_args(argv)
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    for row, s in zip(rows, JigsawScorer().labels([r["text"] for r in rows])):
        row["score"] = s["toxic"]
    toxic = [r for r in rows if r["toxic"]]
    benign = [r for r in rows if not r["toxic"]]
    identity = [r for r in benign if r.get("identity")]

    def fpr(group: list[dict]) -> float:
        return sum(r["score"] > args.threshold for r in group) / len(group)

    result = {
        "sentences": {"toxic": len(toxic), "benign": len(benign), "benign_identity": len(identity)},
        "roc_auc": roc_auc([r["score"] for r in toxic], [r["score"] for r in benign]),
        "threshold": args.threshold,
        "false_positive_rate_benign": fpr(benign),
        "false_positive_rate_benign_identity": fpr(identity),
        "true_positive_rate": sum(r["score"] > args.threshold for r in toxic) / len(toxic),
        "highest_benign_identity": sorted(
            ({"text": r["text"], "toxic": round(r["score"], 4)} for r in identity),
            key=lambda r: -r["toxic"],
        )[:5],
    }
    write_json(args.out, result)
    print(f"ROC AUC {result['roc_auc']:.3f} on {len(toxic)} toxic / {len(benign)} benign")
    print(f"at toxic > {args.threshold}: TPR {result['true_positive_rate']:.3f}, FPR (benign) "
          f"{result['false_positive_rate_benign']:.3f}, FPR (benign identity, "
          f"{len(identity)}) {result['false_positive_rate_benign_identity']:.3f}")  # fmt: skip
    for r in result["highest_benign_identity"]:
        print(f"  {r['toxic']:.3f}  {r['text']}")


if __name__ == "__main__":
    main()
