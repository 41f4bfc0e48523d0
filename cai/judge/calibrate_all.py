"""``cai judge calibrate --mode all``: every scoring mode on the same gold pairs, in one table.

One pass computes every feature of every pair (``Judge.features``): the ordered
multiple-choice pass (``logprob``, and ``debiased`` from the same pass plus one prior per
pair), the persona passes (``contrast_sum``, ``contrast_mean``, ``likelihood_mean``) and the
yes/no pass (``pointwise``). From them the table has two kinds of rows:

- **Unfitted**: each mode as ``cai judge`` runs it, with its documented default scale.
  Nothing is learnt from the gold labels.
- **Fitted, out of fold**: a logistic scale per feature, and ensembles over several
  features (``cai.judge.ensemble``), fitted with length-balanced sample weights. Every
  figure comes from ``folds``-fold cross-validation with a fixed seed: each pair is scored
  by weights fitted without it. The weights fitted on all pairs are written to
  ``fits/<name>.json`` for ``cai judge --mode ensemble --ensemble FILE``.

Every row has accuracy and length-balanced accuracy with bootstrap 95% intervals, position
consistency (ordered modes), ECE and pairs per second; the always-longer baseline and the
agreement between modes come with them. Chain of thought and generate are not in the table:
they generate text, too slowly to run on every pair (calibrate them alone, with ``sample``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from cai._util import file_sha256, write_json_atomic, write_text_atomic
from cai.judge.calibration import (
    CalibrationItem,
    GoldPair,
    calibration_report,
    orderless_item,
    orderless_report,
)
from cai.judge.ensemble import balanced_weights, fit, out_of_fold
from cai.judge.lmscore import CONTRAST
from cai.judge.pairwise import DEFAULT_SCALE, Judge, PairItem, sigmoid
from cai.progress import JobBar

ORDERED = ("logprob", "debiased")
UNFITTED = ("logprob", "debiased", "contrast_mean", "contrast_sum", "likelihood_mean", "pointwise")
"""Modes run as ``cai judge`` runs them (the likelihood as its own row, scale 1)."""
ENSEMBLES = {
    "lm": ("contrast_mean", "contrast_sum", "likelihood_mean", "pointwise"),
    "lm+length": ("contrast_mean", "contrast_sum", "likelihood_mean", "pointwise", "length"),
    "all": ("logprob", "contrast_mean", "contrast_sum", "likelihood_mean", "pointwise"),
    "all+length": (
        "logprob", "contrast_mean", "contrast_sum", "likelihood_mean", "pointwise", "length"
    ),
}  # fmt: skip
"""The fitted feature sets beyond one feature each."""
AS_CLI = {
    "logprob": "--mode logprob",
    "debiased": "--mode debiased",
    "contrast_mean": "--mode contrast",
    "contrast_sum": "--mode contrast --contrast-norm sum",
    "likelihood_mean": "--mode likelihood",
    "pointwise": "--mode pointwise",
}
"""How ``cai judge`` runs each unfitted row."""
CHUNK = 16


def _timed_features(judge: Judge, items: list[PairItem]) -> tuple[list[dict], list, dict]:
    """Every feature of every item (one principle per item), the ordered pass's per-order
    rows, and the seconds each group of passes took."""
    seconds = {"ordered": 0.0, "contrast": 0.0, "pointwise": 0.0}
    feats: list[dict] = [{} for _ in items]
    orders: list[list[dict]] = []
    groups = {"ordered": ORDERED, "contrast": (*CONTRAST, "length"), "pointwise": ("pointwise",)}
    with JobBar(total=len(items), desc="calibrating (all modes)", unit="pair") as bar:
        for at in range(0, len(items), CHUNK):
            chunk = items[at : at + CHUNK]
            for group, names in groups.items():
                start = time.perf_counter()
                _, rows, by_item = judge.features(chunk, names)
                seconds[group] += time.perf_counter() - start
                for k, row in enumerate(rows):
                    feats[at + k].update(row)
                if by_item is not None:
                    orders += by_item
            bar.update(len(chunk))
    return feats, orders, seconds


def _item(g: GoldPair, ps: list[float], firsts: list[bool]) -> CalibrationItem:
    return CalibrationItem(ps, firsts, len(g.correct), len(g.incorrect), g.id)


def logit_report(gold: list[GoldPair], logits: np.ndarray | list[float]) -> dict:
    """The calibration report of orderless soft labels ``sigmoid(logit)`` of P(correct)."""
    return orderless_report(
        [
            orderless_item(sigmoid(float(z)), len(g.correct), len(g.incorrect), g.id)
            for g, z in zip(gold, logits)
        ]  # fmt: skip
    )


HEADLINE = ("accuracy", "accuracy_ci", "length_balanced_accuracy", "length_balanced_accuracy_ci",
            "ece")  # fmt: skip
"""The figures a fit records of itself (out of fold) and a report keeps of shipped weights."""


def length_weights(gold: list[GoldPair]) -> np.ndarray:
    """Sample weights under which pairs whose correct response is longer and pairs whose
    correct response is shorter count equally (``cai.judge.ensemble.balanced_weights``)."""
    return balanced_weights(
        [
            None if len(g.correct) == len(g.incorrect) else len(g.correct) > len(g.incorrect)
            for g in gold
        ]  # fmt: skip
    )


def _row(kind: str, features: tuple[str, ...], report: dict, seconds: float | None, n: int):
    keep = ("accuracy", "accuracy_ci", "length_balanced_accuracy", "length_balanced_accuracy_ci",
            "position_consistency", "ece", "a_win_rate", "always_longer_accuracy")  # fmt: skip
    return {
        "kind": kind,
        "features": list(features),
        **{k: report[k] for k in keep},
        "pairs_per_second": round(n / seconds, 3) if seconds else None,
        "report": report,
    }


def run_all_modes(
    judge: Judge, gold: list[GoldPair], out_dir: Path, *, gold_path: Path, folds: int, seed: int
) -> dict:
    """Judge ``gold`` in every mode, fit and cross-validate, write ``report.json``,
    ``table.md``, ``pairs.jsonl`` and ``fits/``, and return the report."""
    items = [PairItem(g.id, g.conversation, g.correct, g.incorrect) for g in gold]
    feats, orders, secs = _timed_features(judge, items)
    n = len(gold)
    cost = {
        "logprob": secs["ordered"] - judge.stats.get("prior_seconds", 0.0),
        "debiased": secs["ordered"],
        "length": 0.0,
        "pointwise": secs["pointwise"],
        **{f: secs["contrast"] for f in CONTRAST},
        "likelihood_mean": secs["contrast"] / 2,  # alone it needs the follows persona only
    }
    modes: dict[str, dict] = {}
    p_correct: dict[str, list[float]] = {}
    for mode in UNFITTED:
        if mode in ORDERED:
            key = "p_a_logprob" if mode == "logprob" else "p_a"
            per = [[r[key] for r in rows] for rows in orders]
            firsts = [[r["order"] == "ab" for r in rows] for rows in orders]
            report = calibration_report([_item(g, p, f) for g, p, f in zip(gold, per, firsts)])
            p_correct[mode] = [float(np.mean(p)) for p in per]
        else:
            z = np.array([DEFAULT_SCALE.get(mode, 1.0) * f[mode] for f in feats])
            report = logit_report(gold, z)
            p_correct[mode] = [sigmoid(float(v)) for v in z]
        modes[mode] = _row("unfitted", (mode,), report, cost[mode], n)
    X_all = {name: np.array([f[name] for f in feats]) for name in feats[0]}
    weights = length_weights(gold)
    gold_sha = file_sha256(gold_path)
    fits_dir = out_dir / "fits"
    fitted_sets = {f"{f} (fitted)": (f,) for f in (*UNFITTED[:1], *UNFITTED[2:])}
    fitted_sets.update({f"ensemble: {k}": v for k, v in ENSEMBLES.items()})
    fit_files = {}
    for name, features in fitted_sets.items():
        X = np.column_stack([X_all[f] for f in features])
        oof = out_of_fold(X, features, folds=folds, seed=seed, sample_weight=weights)
        report = logit_report(gold, oof)
        seconds = _sum_cost(cost, features)
        modes[name] = _row(f"fitted, {folds}-fold out of fold", features, report, seconds, n)
        p_correct[name] = [sigmoid(float(v)) for v in oof]
        meta = {
            "fitted_on": str(gold_path), "gold_sha256": gold_sha, "pairs": n, "folds": folds,
            "seed": seed, "judge_model": judge.backend.model_name,
            "constitution": judge.constitution.name,
            "constitution_sha256": judge.constitution.content_hash,
            "sample_weight": "length-balanced",
            "out_of_fold": {k: modes[name][k] for k in HEADLINE},
        }  # fmt: skip
        model = fit(X, features, sample_weight=weights, meta=meta)
        file = fits_dir / (
            name.replace("ensemble: ", "ensemble-").replace(" (fitted)", "") + ".json"
        )
        fits_dir.mkdir(parents=True, exist_ok=True)
        model.save(file)
        fit_files[name] = str(file)
        modes[name]["fit"] = {"file": str(file), "weights": dict(zip(features, model.weights))}
    best = max(modes, key=lambda m: modes[m]["length_balanced_accuracy"] or 0.0)
    report = {
        "mode": "all",
        "n": n,
        "gold": str(gold_path),
        "gold_sha256": gold_sha,
        "judge_model": judge.backend.model_name,
        "constitution": judge.constitution.name,
        "constitution_sha256": judge.constitution.content_hash,
        "principles": judge.principles,
        "seed": seed,
        "folds": folds,
        "always_longer_accuracy": modes["logprob"]["always_longer_accuracy"],
        "modes": modes,
        "agreement": _agreement(p_correct),
        "best": best,
        "best_by": "length_balanced_accuracy",
        "fits": fit_files,
        "seconds": {k: round(v, 2) for k, v in secs.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "report.json", report)
    write_text_atomic(out_dir / "table.md", all_modes_table(report))
    lines = [
        json.dumps(
            {
                "id": g.id,
                "len_correct": len(g.correct),
                "len_incorrect": len(g.incorrect),
                "p_correct": p_correct[best][k],
                "best": best,
                "p_correct_by_mode": {m: round(p[k], 6) for m, p in p_correct.items()},
                "features": f,
            }
        )  # fmt: skip
        + "\n"
        for k, (g, f) in enumerate(zip(gold, feats))
    ]
    write_text_atomic(out_dir / "pairs.jsonl", "".join(lines))
    return report


def _sum_cost(cost: dict, features: tuple[str, ...]) -> float:
    """The seconds of the passes an ensemble needs (each pass counted once)."""
    persona = "likelihood_mean" if set(features) & set(CONTRAST) == {"likelihood_mean"} else None
    passes = {(persona or "contrast") if f in CONTRAST else f for f in features}
    pick = {"contrast": cost["contrast_mean"], "logprob": cost["logprob"]}
    return sum(pick.get(p, cost.get(p, 0.0)) for p in passes)


def _agreement(p_correct: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """For each two modes, the share of pairs on which their verdicts agree."""
    verdict = {m: np.sign(np.asarray(p) - 0.5) for m, p in p_correct.items()}
    return {a: {b: float(np.mean(verdict[a] == verdict[b])) for b in verdict} for a in verdict}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _ci(row: dict, key: str) -> str:
    ci = row.get(key + "_ci")
    return f"{_pct(row.get(key))} [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else _pct(row.get(key))


def all_modes_table(report: dict) -> str:
    """The ``--mode all`` table as Markdown, unfitted and fitted rows in separate sections."""
    head = ("| mode | accuracy % [95% CI] | length-balanced % [95% CI] | consistency % | ECE "
            "| pairs/s |\n|---|---|---|---|---|---|\n")  # fmt: skip
    out = [
        f"Judge `{report['judge_model']}`, constitution `{report['constitution']}`, "
        f"{report['n']} gold pairs of `{report['gold']}`. Always the longer answer: "
        f"{_pct(report['always_longer_accuracy'])}% (length-balanced 50% by construction).\n",
    ]
    for title, fitted in (("Unfitted (default scales; nothing learnt from the labels)", False),
                          (f"Fitted, {report['folds']}-fold out of fold (seed "
                           f"{report['seed']}; length-balanced weights)", True)):  # fmt: skip
        out.append(f"\n### {title}\n\n{head}")
        for name, row in report["modes"].items():
            if row["kind"].startswith("fitted") != fitted:
                continue
            ece = "n/a" if row["ece"] is None else f"{row['ece']:.3f}"
            pps = "n/a" if row["pairs_per_second"] is None else f"{row['pairs_per_second']:.2f}"
            label = f"{name} (`{AS_CLI[name]}`)" if name in AS_CLI and not fitted else name
            out.append(
                f"| {label} | {_ci(row, 'accuracy')} | {_ci(row, 'length_balanced_accuracy')} "
                f"| {_pct(row['position_consistency'])} | {ece} | {pps} |\n"
            )
    out.append(
        f"\nBest by length-balanced accuracy: **{report['best']}**. Pairs/s: each "
        "mode's own passes in this run (likelihood: half the persona passes, which "
        "is all it needs alone); an ensemble's, the sum of its features' passes.\n"
    )
    return "".join(out)
