"""Measure an AI judge on labelled pairs, for ``cai judge calibrate --gold FILE``.

``read_gold`` reads the CAI paper's HHH evaluation JSONL or plain prompt/chosen/rejected rows;
``calibration_report`` scores per-order judge probabilities; ``summary_table`` and
``reliability_plot`` show the report.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cai._util import bootstrap_ci, canonical_hash
from cai._util.plots import new_figure, save_png
from cai.data import to_conversation
from cai.errors import CaiError

_OPEN, _CLOSE, _LAST_TURN = "[[[", "]]]", "\n\nAssistant:"
_HHH_LABELS = {'[[" (A)"], [" (B)"]]': "A", '[[" (B)"], [" (A)"]]': "B"}


@dataclass(frozen=True)
class GoldPair:
    """One labelled pair: a conversation and a better and a worse final assistant response."""

    id: str
    conversation: list[dict]  # messages up to the last user turn
    correct: str
    incorrect: str
    verbatim: str | None  # the file's own prompt, order as given
    verbatim_correct_label: str | None  # "A" or "B" in that verbatim prompt


@dataclass(frozen=True)
class CalibrationItem:
    """A judged pair: per presentation order, P(judge prefers the correct response) (None =
    abstained) and whether the correct response was shown first, as (A)."""

    p_by_order: list[float | None]
    correct_first_by_order: list[bool]
    len_correct: int
    len_incorrect: int
    id: str = ""
    """The gold pair's id (for ``pairs.jsonl``)."""


def read_gold(path: Path) -> list[GoldPair]:
    """Read gold pairs from a ``.jsonl`` (one object a line) or ``.json`` (a list) file.

    A malformed row raises CaiError naming the file and line (or list item). Ids are the
    row's ``id`` or ``"g-"`` + 12 hex of the pair's sha256, with ``-2``, ``-3`` on repeats.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
        if path.suffix == ".json":
            data = json.loads(text)
            if not isinstance(data, list):
                raise CaiError(f"{path}: expected a JSON list of pair objects")
            rows = [(f"item {i}", row) for i, row in enumerate(data, 1)]
        else:
            rows = [(f"line {n}", s) for n, s in enumerate(text.split("\n"), 1) if s.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CaiError(f"cannot read gold file {path}: {e}") from None
    pairs: list[GoldPair] = []
    seen: Counter[str] = Counter()
    for where, row in rows:
        try:
            pair = _parse_row(row if path.suffix == ".json" else json.loads(row))
        except json.JSONDecodeError as e:
            raise CaiError(f"{path}, {where}: not valid JSON ({e})") from None
        except (ValueError, CaiError) as e:
            raise CaiError(f"{path}, {where}: {e}") from None
        seen[pair.id] += 1
        pairs.append(replace(pair, id=f"{pair.id}-{seen[pair.id]}") if seen[pair.id] > 1 else pair)
    if not pairs:
        raise CaiError(f"{path}: no gold pairs in the file")
    return pairs


def swap_verbatim(prompt: str) -> str:
    """The verbatim HHH prompt with its two ``[[[...]]]`` blocks swapped, so the correct
    label flips (the paper's way of showing both orders)."""
    (o1, c1), (o2, c2) = _blocks(prompt)
    return prompt[:o1] + prompt[o2:c2] + prompt[c1:o2] + prompt[o1:c1] + prompt[c2:]


def _blocks(prompt: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Content spans of the two blocks. A block closes at the *last* ``]]]`` before the next
    block (or the end), so a response ending in ``]`` (``[your name]]]]``) stays whole."""
    if prompt.count(_OPEN) != 2:
        raise CaiError(f"expected exactly two [[[...]]] blocks, found {prompt.count(_OPEN)}")
    o1 = prompt.index(_OPEN) + 3
    o2 = prompt.index(_OPEN, o1) + 3
    c1, c2 = prompt.rfind(_CLOSE, o1, o2 - 3), prompt.rfind(_CLOSE, o2)
    if c1 < 0 or c2 < 0:
        raise CaiError("a [[[ block in the prompt is never closed with ]]]")
    return (o1, c1), (o2, c2)


def _parse_row(row: Any) -> GoldPair:
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    if "text_correct" in row or "corrects" in row:
        conversation, correct, incorrect, label = _parse_hhh(row)
    elif {"prompt", "chosen", "rejected"} <= row.keys():
        conversation, label = _conversation(row["prompt"]), None
        correct = _response(row["chosen"], "chosen")
        incorrect = _response(row["rejected"], "rejected")
    else:
        raise ValueError(
            "expected HHH columns (prompt, corrects, incorrects, text_correct, text_incorrect) "
            f"or prompt + chosen + rejected; found {sorted(row)}"
        )
    canon = [conversation, correct, incorrect]
    pair_id = "g-" + canonical_hash(canon, 12) if row.get("id") is None else row["id"]
    verbatim = row["prompt"] if label else None  # only the HHH format has one
    return GoldPair(str(pair_id), conversation, correct, incorrect, verbatim, label)


def _parse_hhh(row: dict) -> tuple[list[dict], str, str, str]:
    for key in ("prompt", "text_correct", "text_incorrect"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise ValueError(f"HHH row: {key!r} must be a non-empty string")
    labels = json.dumps([row.get("corrects"), row.get("incorrects")])
    if (label := _HHH_LABELS.get(labels)) is None:
        raise ValueError(
            f"HHH row: corrects/incorrects not [' (A)']/[' (B)'] or reversed: {labels}"
        )
    conv, correct = _split_hh(row["text_correct"], "text_correct")
    conv_i, incorrect = _split_hh(row["text_incorrect"], "text_incorrect")
    if conv != conv_i:
        raise ValueError("HHH row: text_correct and text_incorrect have different conversations")
    spans = _blocks(prompt := row["prompt"])
    a, b = (prompt[o:c].strip() for o, c in spans)
    if (a, b) != ((correct, incorrect) if label == "A" else (incorrect, correct)):
        raise ValueError(f"HHH row: the [[[...]]] blocks do not match the texts (correct={label})")
    if any(m["content"] not in prompt[: spans[0][0]] for m in conv):
        raise ValueError("HHH row: the prompt does not contain the conversation of text_correct")
    return conv, correct, incorrect, label


def _split_hh(text: str, key: str) -> tuple[list[dict], str]:
    """An HH transcript cut at its final ``Assistant:`` turn: (conversation, response)."""
    cut = text.rfind(_LAST_TURN)
    response = text[cut + len(_LAST_TURN) :].strip() if cut >= 0 else ""
    if not response:
        raise ValueError(f"HHH row: {key!r} has no non-empty final '\\n\\nAssistant:' turn")
    return _conversation(text[:cut], key), response


def _conversation(value: Any, key: str = "prompt") -> list[dict]:
    """A gold prompt as messages (``to_conversation``); it must end with a user turn."""
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        if value[-1].get("role") != "user":
            raise ValueError(f"{key!r}: the conversation must end with a user turn")
    return to_conversation(value, key)


def _response(value: Any, key: str) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0].get("content") if value[0].get("role") == "assistant" else None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key!r} must be a non-empty string or one assistant message")
    return value.strip()


def _score(p: float | None) -> float:
    """1 if the judge prefers the correct response, 0 if not, 0.5 for a tie (±1e-9) or None."""
    return 0.5 if p is None or abs(p - 0.5) < 1e-9 else float(p > 0.5)


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def calibration_report(
    items: list[CalibrationItem], *, n_boot: int = 1000, seed: int = 0, bins: int = 10
) -> dict:
    """Metrics of a judge over gold pairs, as a JSON-safe dict. A pair's p is the mean of its
    non-None order probabilities; ties (p == 0.5) and abstained pairs score 0.5. The CI is a
    seeded 95% percentile bootstrap over pairs. ``a_win_rate`` counts a tie as half a win;
    ``position_consistency`` is over pairs judged in 2+ orders (a tie or abstention in any
    order is inconsistent). ``reliability`` bins every non-None single-order P(A) (A = the
    response shown first); ``observed`` is how often A was the correct one."""
    if not items or n_boot < 1 or bins < 1:
        raise ValueError("calibration_report needs items, n_boot >= 1 and bins >= 1")
    for it in items:
        same_len = len(it.p_by_order) == len(it.correct_first_by_order)
        if not same_len or any(p is not None and not 0.0 <= p <= 1.0 for p in it.p_by_order):
            raise ValueError(f"bad item (lists differ in length or p not in [0, 1]): {it}")
    pair_p = [_mean([p for p in it.p_by_order if p is not None]) for it in items]
    scores = np.array([_score(p) for p in pair_p])
    by_order = [
        _mean([_score(it.p_by_order[k]) for it in items if len(it.p_by_order) > k])
        for k in range(max(len(it.p_by_order) for it in items))
    ]
    multi = [[_score(p) for p in it.p_by_order] for it in items if len(it.p_by_order) >= 2]
    consistent = [float(len(set(s)) == 1 and s[0] != 0.5) for s in multi]
    singles = [(p, f) for it in items for p, f in zip(it.p_by_order, it.correct_first_by_order)]
    judged = [(p if f else 1.0 - p, f) for p, f in singles if p is not None]  # (P(A), A correct)
    decided = [
        (_score(p) == 1.0, it.len_correct > it.len_incorrect)
        for p, it in zip(pair_p, items)
        if _score(p) != 0.5 and it.len_correct != it.len_incorrect
    ]
    longer = [float(s) for s, it in zip(scores, items) if it.len_correct > it.len_incorrect]
    shorter = [float(s) for s, it in zip(scores, items) if it.len_correct < it.len_incorrect]
    table, ece = [], 0.0
    for b in range(bins):
        inside = [(pa, f) for pa, f in judged if min(int(pa * bins), bins - 1) == b]
        pred, obs = _mean([pa for pa, _ in inside]), _mean([float(f) for _, f in inside])
        if inside:
            ece += len(inside) / len(judged) * abs(obs - pred)
        row = {"lo": b / bins, "hi": (b + 1) / bins, "count": len(inside)}
        table.append({**row, "mean_predicted": pred, "observed": obs})
    abstentions = len(singles) - len(judged)
    return {
        "n": len(items),
        "accuracy": float(scores.mean()),
        "accuracy_ci": bootstrap_ci(scores, n_boot, seed),
        "n_boot": n_boot,
        "seed": seed,
        "abstained_pairs": sum(p is None for p in pair_p),
        "accuracy_by_order": by_order,
        "position_consistency": _mean(consistent),
        "a_win_rate": _mean([_score(pa) for pa, _ in judged]),
        "judgments": len(singles),
        "abstentions": abstentions,
        "abstention_rate": abstentions / len(singles) if singles else None,
        "length_balanced_accuracy": _balanced(longer, shorter),
        "length_balanced_accuracy_ci": _balanced_ci(longer, shorter, n_boot, seed),
        "always_longer_accuracy": _mean([_longer_score(it) for it in items]),
        "pairs_correct_longer": len(longer),
        "pairs_correct_shorter": len(shorter),
        "length_bias": {
            "n": len(decided),
            "judge_prefers_longer": _mean([float(j == g) for j, g in decided]),
            "gold_prefers_longer": _mean([float(g) for _, g in decided]),
        },
        "reliability": table,
        "ece": float(ece) if judged else None,
    }


def orderless_item(p: float, len_correct: int, len_incorrect: int, id: str) -> CalibrationItem:
    """A soft label with no presentation order (contrast, pointwise, ensemble): counted once,
    with its reliability symmetrised (P(correct) shown "first", 1 - P(incorrect) "second")."""
    return CalibrationItem([p, p], [True, False], len_correct, len_incorrect, id)


def orderless_report(items: list[CalibrationItem], **kwargs: Any) -> dict:
    """``calibration_report`` of ``orderless_item``s: one accuracy, and no position
    consistency or (A) win rate, which need an order."""
    report = calibration_report(items, **kwargs)
    report["accuracy_by_order"] = report["accuracy_by_order"][:1]
    report.update(position_consistency=None, a_win_rate=None)
    return report


def _longer_score(it: CalibrationItem) -> float:
    """How a judge that always picks the longer response scores this pair (a tie: 0.5)."""
    if it.len_correct == it.len_incorrect:
        return 0.5
    return float(it.len_correct > it.len_incorrect)


def _balanced(longer: list[float], shorter: list[float]) -> float | None:
    """The mean of the accuracy where the correct response is the longer one and where it is
    the shorter one: a pure length heuristic scores 0.5 on it, whatever the data's skew."""
    if not longer or not shorter:
        return None
    return (float(np.mean(longer)) + float(np.mean(shorter))) / 2


def _balanced_ci(longer: list[float], shorter: list[float], n_boot: int, seed: int):
    """A seeded 95% percentile bootstrap of ``_balanced``, resampling each group apart."""
    if not longer or not shorter:
        return None
    rng = np.random.default_rng(seed)
    a, b = np.asarray(longer), np.asarray(shorter)
    boot = (
        a[rng.integers(0, len(a), (n_boot, len(a)))].mean(axis=1)
        + b[rng.integers(0, len(b), (n_boot, len(b)))].mean(axis=1)
    ) / 2
    return [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]


def pair_records(items: list[CalibrationItem]) -> list[dict]:
    """One line per gold pair for ``pairs.jsonl``, in file order: ``p_correct`` (the judge's
    probability for the gold-correct response, averaged over orders; None if it abstained in
    every order) and the per-order details."""
    return [
        {
            "id": it.id,
            "p_correct": _mean([p for p in it.p_by_order if p is not None]),
            "p_correct_by_order": it.p_by_order,
            "correct_shown_first_by_order": it.correct_first_by_order,
            "len_correct": it.len_correct,
            "len_incorrect": it.len_incorrect,
        }
        for it in items
    ]


def summary_table(report: dict) -> str:
    """A short plain-text table of the report's headline numbers, for the terminal."""
    (lo, hi), lb, ece = report["accuracy_ci"], report["length_bias"], report["ece"]
    n_abs, n_judg = report["abstentions"], report["judgments"]
    rows = [
        ("pairs", str(report["n"])),
        ("accuracy", f"{_pct(report['accuracy'])}  (95% CI {_pct(lo)} to {_pct(hi)})"),
        ("length-balanced acc.", _balanced_line(report)),
        ("always the longer", f"{_pct(report.get('always_longer_accuracy'))}  (the length "
         "baseline; 50% length-balanced)"),
        ("accuracy by order", "  ".join(_pct(a) for a in report["accuracy_by_order"])),
        ("position consistency", _pct(report["position_consistency"])),
        ("(A) win rate", _pct(report["a_win_rate"])),
        ("abstentions", f"{n_abs}/{n_judg} judgments, {report['abstained_pairs']} whole pairs"),
        ("prefers longer", f"judge {_pct(lb['judge_prefers_longer'])}, gold "
         f"{_pct(lb['gold_prefers_longer'])} (of {lb['n']} decided pairs)"),
        ("ECE of P(A)", "n/a" if ece is None else f"{ece:.3f}"),
    ]  # fmt: skip
    if shipped := report.get("shipped_weights"):
        rows.insert(1, ("figures", str(report.get("figures"))))
        rows.append(("weights as shipped", f"accuracy {_pct(shipped['accuracy'])}, "
                     f"length-balanced {_pct(shipped['length_balanced_accuracy'])} ("
                     f"{shipped['note']})"))  # fmt: skip
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _balanced_line(report: dict) -> str:
    acc, ci = report.get("length_balanced_accuracy"), report.get("length_balanced_accuracy_ci")
    if acc is None:
        return "n/a (needs pairs where the correct response is longer and where it is shorter)"
    return (
        f"{_pct(acc)}  (95% CI {_pct(ci[0])} to {_pct(ci[1])}; "
        f"{report['pairs_correct_longer']} pairs correct-longer, "
        f"{report['pairs_correct_shorter']} correct-shorter)"
    )


def reliability_plot(report: dict, path: Path, title: str) -> None:
    """Save the reliability diagram of P(A) (observed vs predicted, with counts) as a PNG."""
    fig = new_figure((5.5, 5.5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    full = [r for r in report["reliability"] if r["count"]]
    x, y = [r["mean_predicted"] for r in full], [r["observed"] for r in full]
    ax.plot(x, y, "o-", label="observed vs mean predicted, per bin (count)")
    for r, xy in zip(full, zip(x, y)):
        ax.annotate(str(r["count"]), xy, textcoords="offset points", xytext=(0, 6), fontsize=8)
    if report.get("ece") is not None:
        title += f"\nECE {report['ece']:.3f}, {report['n']} pairs"
    ax.set(title=title, xlim=(0, 1), ylim=(0, 1.08), xlabel="judge P(A), A = shown first")
    ax.set_ylabel("observed frequency that A was correct")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    save_png(fig, path, dpi=120)
