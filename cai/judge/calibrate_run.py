"""``cai judge calibrate``: measure a judge on gold-labelled pairs.

Two modes:

- ``verbatim``: the gold file's own prompt (the CAI paper's HHH format), shown to the
  judge as the user turn with "The answer is:" as the open answer, and the reversed order
  made by swapping the two ``[[[...]]]`` blocks, as in the paper. Logprob mode only: the
  other modes always re-render.
- ``rerendered``: the conversation is parsed out and judged with our template and the
  constitution's comparison questions, through the same ``Judge`` as ``cai judge``, in
  any mode (``debiased``, ``contrast``, ``pointwise``, ``ensemble`` ...).

``--mode all`` (``cai.judge.calibrate_all``) puts every scoring mode in one table, with
fitted scales and ensembles reported out of fold.

The report (``report.json``, ``reliability.png``, ``pairs.jsonl`` and a terminal table) has
accuracy with a bootstrap 95% interval, the length-balanced accuracy (the mean of the
accuracy where the correct response is longer and where it is shorter; a length heuristic
scores 0.5) with its interval, the always-the-longer baseline, accuracy per order,
position consistency, the share of "A" wins, abstentions, length bias and a reliability
table. ``pairs.jsonl`` has one line per gold pair, in file order, with ``p_correct``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cai._util import write_json_atomic, write_text_atomic
from cai.backends.base import Backend
from cai.config import CalibrateConfig
from cai.errors import CaiError
from cai.judge.build import build_judge, scoring_settings
from cai.judge.calibrate_all import HEADLINE, length_weights, logit_report, run_all_modes
from cai.judge.calibration import (
    CalibrationItem,
    GoldPair,
    calibration_report,
    orderless_item,
    orderless_report,
    pair_records,
    read_gold,
    reliability_plot,
    swap_verbatim,
)
from cai.judge.ensemble import out_of_fold
from cai.judge.pairwise import ANSWER_PREFIX, FEATURE_MODES, Judge, PairItem
from cai.progress import JobBar

_SUFFIX = "The answer is:"
CHUNK = 16
"""Gold pairs per judge call: the progress bar moves after each."""


def _in_chunks(items: list, fn: Callable[[list], list], per_pair: int = 1) -> list:
    """``fn`` over ``CHUNK`` pairs at a time (``per_pair`` items each), with a progress bar
    that moves after each call and, inside it, with the backend's batches and tokens."""
    out: list = []
    step = CHUNK * per_pair
    with JobBar(total=len(items) // per_pair, desc="calibrating", unit="pair") as bar:
        for i in range(0, len(items), step):
            out += fn(items[i : i + step])
            bar.update(len(items[i : i + step]) // per_pair)
    return out


def _verbatim_items(judge: Judge, gold: list[GoldPair]) -> list[CalibrationItem]:
    usable = [g for g in gold if g.verbatim]
    if not usable:
        raise CaiError("verbatim mode needs the CAI paper's HHH format; use --rerendered")
    convs, firsts = [], []
    for g in usable:
        for text, correct_first in (
            (g.verbatim, g.verbatim_correct_label == "A"),
            (swap_verbatim(g.verbatim), g.verbatim_correct_label != "A"),
        ):
            body = text.rstrip()
            body = body[: -len(_SUFFIX)] if body.endswith(_SUFFIX) else body
            convs.append([{"role": "user", "content": body.strip()}])
            firsts.append(correct_first)
    p_first = _in_chunks(convs, lambda c: judge._p_first(c)[0], per_pair=2)
    items = []
    for n, g in enumerate(usable):
        ps, cf = p_first[2 * n : 2 * n + 2], firsts[2 * n : 2 * n + 2]
        p_correct = [None if p is None else (p if f else 1 - p) for p, f in zip(ps, cf)]
        items.append(CalibrationItem(p_correct, cf, len(g.correct), len(g.incorrect), g.id))
    return items


def _rerendered_items(
    judge: Judge, gold: list[GoldPair], results: list | None = None
) -> list[CalibrationItem]:
    """The judge's verdicts on ``gold`` through our templates; each ``PairResult`` is also
    appended to ``results`` when given."""
    pairs = [PairItem(g.id, g.conversation, g.correct, g.incorrect) for g in gold]
    items = []
    for g, r in zip(gold, _in_chunks(pairs, judge.judge)):
        if results is not None:
            results.append(r)
        if judge.mode in FEATURE_MODES:
            items.append(orderless_item(r.p_a, len(g.correct), len(g.incorrect), g.id))
            continue
        p_by_order = [o["p_a"] for o in r.orders]
        firsts = [o["order"] == "ab" for o in r.orders]
        items.append(CalibrationItem(p_by_order, firsts, len(g.correct), len(g.incorrect), g.id))
    return items


def _pick(
    gold: list[GoldPair], limit: int | None, sample: int | None, seed: int
) -> tuple[list[GoldPair], list[int]]:
    """The first ``limit`` pairs, or a seeded random ``sample`` of them (in file order)."""
    gold = gold[:limit]
    picked = list(range(len(gold)))
    if sample is not None and sample < len(gold):
        picked = sorted(random.Random(seed).sample(picked, sample))
        gold = [gold[i] for i in picked]
    return gold, picked


def run_calibration(
    judge: Judge,
    gold_path: Path,
    out_dir: Path,
    *,
    verbatim: bool,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    folds: int = 5,
) -> dict:
    """Judge the gold pairs (the first ``limit``, or a seeded random ``sample`` of them),
    write report.json and reliability.png, and return the report.

    An ensemble judge's weights were fitted on gold pairs, maybe these ones, so its
    headline figures are out of fold: the ensemble's features refitted with ``folds``-fold
    cross-validation on these pairs (each scored by weights that never saw it); the
    figures of the weights as shipped are kept under ``shipped_weights``."""
    gold, picked = _pick(read_gold(gold_path), limit, sample, seed)
    verbatim = verbatim and judge.mode == "logprob"  # the other modes always re-render
    start = time.perf_counter()
    results: list = []
    items = _verbatim_items(judge, gold) if verbatim else _rerendered_items(judge, gold, results)
    seconds = time.perf_counter() - start
    if judge.mode in FEATURE_MODES:
        report = orderless_report(items)
    else:
        report = calibration_report(items)
    if judge.mode == "ensemble":
        report = _out_of_fold(judge, gold, results, report, folds, seed)
    report.update(
        gold=str(gold_path),
        subsample={"seed": seed, "rows": picked} if sample is not None else None,
        prompt_mode="verbatim" if verbatim else "rerendered",
        judge_mode=judge.mode,
        judge_model=judge.backend.model_name,
        answer_prefix=ANSWER_PREFIX,
        constitution=judge.constitution.name,
        cot_clamp=list(judge.cot_clamp) if judge.cot_clamp and judge.mode == "cot" else None,
        seconds=round(seconds, 2),
        pairs_per_second=round(len(items) / seconds, 3) if seconds else None,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "report.json", report)
    write_text_atomic(
        out_dir / "pairs.jsonl", "".join(json.dumps(r) + "\n" for r in pair_records(items))
    )
    title = f"{judge.backend.model_name}, {report['prompt_mode']}, {judge.mode}"
    reliability_plot(report, out_dir / "reliability.png", title)
    return report


def _out_of_fold(
    judge: Judge, gold: list[GoldPair], results: list, shipped: dict, folds: int, seed: int
) -> dict:
    """The ensemble's calibration report from out-of-fold refits of its feature set (each
    pair's features averaged over its principles)."""
    features = judge.ensemble.features
    X = np.array(
        [[np.mean([o["features"][f] for o in r.orders]) for f in features] for r in results]
    )
    oof = out_of_fold(X, features, folds=folds, seed=seed, sample_weight=length_weights(gold))
    report = logit_report(gold, oof)
    report["shipped_weights"] = {k: shipped[k] for k in HEADLINE} | {
        "note": "in sample if the weights were fitted on these pairs"
    }
    report["figures"] = f"{folds}-fold out of fold (the ensemble's features refitted)"
    return report


def _check_fittable(gold: list[GoldPair], folds: int) -> None:
    """Raise ``CaiError`` if the out-of-fold fits cannot use ``gold``: fewer pairs than
    folds, or the correct response longer in every pair or shorter in every pair."""
    if len(gold) < folds:
        raise CaiError(
            f"{folds}-fold cross-validation needs at least {folds} gold pairs, got "
            f"{len(gold)}: use more pairs or fewer --folds"
        )
    length_weights(gold)  # raises if one length group is empty


def run_calibration_from_config(cfg: CalibrateConfig, backend: Backend | None = None) -> dict:
    """``cai judge calibrate`` (and the pipeline's calibrate stage): build the judge of
    ``cfg`` on its engine (or on ``backend``, a ready one), judge the gold pairs, write the
    report folder and return the report."""
    settings = scoring_settings(cfg)
    if cfg.mode in ("all", "ensemble"):  # refuse pairs the fits cannot use before scoring
        gold = _pick(read_gold(cfg.gold), cfg.limit, cfg.sample, cfg.seed)[0]
        _check_fittable(gold, cfg.folds)
    if cfg.mode == "all":
        settings["mode"] = "logprob"  # the judge computes every mode's features itself
    judge = build_judge(
        cfg.judge,
        backend=backend,
        constitution=cfg.constitution,
        principles=cfg.principles,
        seed=cfg.seed,
        max_new_tokens=cfg.judge_max_new_tokens,
        prompts_dir=cfg.prompts_dir,
        **settings,
    )
    if cfg.mode == "all":
        return run_all_modes(
            judge, gold, cfg.output, gold_path=cfg.gold, folds=cfg.folds, seed=cfg.seed
        )
    return run_calibration(
        judge,
        cfg.gold,
        cfg.output,
        verbatim=cfg.verbatim,
        limit=cfg.limit,
        sample=cfg.sample,
        seed=cfg.seed,
        folds=cfg.folds,
    )
