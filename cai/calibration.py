"""Measure an AI judge on labelled pairs, for ``cai judge calibrate --gold FILE``.

``read_gold`` reads either the CAI paper's HHH evaluation JSONL (``prompt`` with the two
responses in ``[[[...]]]`` blocks, ``corrects``, ``incorrects``, ``text_correct``,
``text_incorrect``) or plain preference rows (``prompt`` + ``chosen`` + ``rejected``).
``calibration_report`` turns per-order judge probabilities into accuracy (with a bootstrap
CI), position consistency, (A) bias, abstentions, length bias and a reliability table;
``summary_table`` and ``reliability_plot`` show it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cai.data import parse_hh
from cai.errors import CaiError
from cai.files import atomic_file

_OPEN, _CLOSE = "[[[", "]]]"
_LAST_TURN = "\n\nAssistant:"


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
    """A judged gold pair: per presentation order, P(judge prefers the correct response)
    (None = abstained) and whether the correct response was shown first, as (A)."""

    p_by_order: list[float | None]
    correct_first_by_order: list[bool]
    len_correct: int
    len_incorrect: int


# ---------------------------------------------------------------- gold parsing


def read_gold(path: Path) -> list[GoldPair]:
    """Read gold pairs from a ``.jsonl`` (one object a line) or ``.json`` (a list) file.

    Raises CaiError naming the file and line (or list item) of the first malformed row.
    Ids are the row's ``id`` or ``"g-"`` + 12 hex of the pair's sha256 (``-2`` on repeats).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CaiError(f"cannot read gold file {path}: {e}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CaiError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, list):
            raise CaiError(f"{path}: expected a JSON list of pair objects")
        rows = [(f"item {i + 1}", row) for i, row in enumerate(data)]
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"line {n}", json.loads(line)))
                except json.JSONDecodeError as e:
                    raise CaiError(f"{path}, line {n}: not valid JSON ({e})") from None
    pairs: list[GoldPair] = []
    seen: dict[str, int] = {}
    for where, row in rows:
        try:
            pair = _parse_row(row)
        except ValueError as e:
            raise CaiError(f"{path}, {where}: {e}") from None
        if pair.id in seen:
            seen[pair.id] += 1
            pair = replace(pair, id=f"{pair.id}-{seen[pair.id]}")
        seen.setdefault(pair.id, 1)
        pairs.append(pair)
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


def _pair_id(row: dict, conversation: list[dict], correct: str, incorrect: str) -> str:
    if row.get("id") is not None:
        return str(row["id"])
    canon = json.dumps([conversation, correct, incorrect], sort_keys=True, ensure_ascii=False)
    return "g-" + hashlib.sha256(canon.encode("utf-8")).hexdigest()[:12]


def _parse_row(row: Any) -> GoldPair:
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    if "text_correct" in row or "corrects" in row:
        return _parse_hhh(row)
    if {"prompt", "chosen", "rejected"} <= row.keys():
        conversation = _conversation(row["prompt"])
        chosen, rejected = (
            _response(row["chosen"], "chosen"),
            _response(row["rejected"], "rejected"),
        )
        return GoldPair(_pair_id(row, conversation, chosen, rejected), conversation, chosen,
                        rejected, None, None)  # fmt: skip
    raise ValueError(
        "expected HHH columns (prompt, corrects, incorrects, text_correct, text_incorrect) "
        f"or prompt + chosen + rejected; found {sorted(row)}"
    )


def _parse_hhh(row: dict) -> GoldPair:
    for key in ("prompt", "text_correct", "text_incorrect"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise ValueError(f"HHH row: {key!r} must be a non-empty string")
    labels = {"A": [" (A)"], "B": [" (B)"]}
    label = next((k for k, v in labels.items() if row.get("corrects") == v), None)
    if label is None or row.get("incorrects") != labels["B" if label == "A" else "A"]:
        raise ValueError(
            f"HHH row: corrects/incorrects must be [' (A)']/[' (B)'] or the reverse, got "
            f"{row.get('corrects')!r}/{row.get('incorrects')!r}"
        )
    (conv_c, correct), (conv_i, incorrect) = (
        _split_hh(row[k], k) for k in ("text_correct", "text_incorrect")
    )
    if conv_c != conv_i:
        raise ValueError("HHH row: text_correct and text_incorrect have different conversations")
    prompt = row["prompt"]
    try:
        spans = _blocks(prompt)
    except CaiError as e:
        raise ValueError(f"HHH prompt: {e}") from None
    a, b = (prompt[o:c].strip() for o, c in spans)
    if (a, b) != ((correct, incorrect) if label == "A" else (incorrect, correct)):
        raise ValueError(f"HHH row: the [[[...]]] blocks do not match the texts (correct={label})")
    first = prompt.index(_OPEN)
    turns = [m["content"] for m in conv_c]
    if any(t not in prompt[:first] for t in turns):
        raise ValueError("HHH row: the prompt does not contain the conversation of text_correct")
    return GoldPair(_pair_id(row, conv_c, correct, incorrect), conv_c, correct, incorrect,
                    prompt, label)  # fmt: skip


def _split_hh(text: str, key: str) -> tuple[list[dict], str]:
    """An HH transcript cut at its final ``Assistant:`` turn: (conversation, response)."""
    cut = text.rfind(_LAST_TURN)
    if cut < 0:
        raise ValueError(f"HHH row: {key!r} has no final '\\n\\nAssistant:' turn")
    response = text[cut + len(_LAST_TURN) :].strip()
    if not response:
        raise ValueError(f"HHH row: {key!r} has an empty final assistant response")
    return _checked(parse_hh(text[:cut]), key), response


def _conversation(value: Any) -> list[dict]:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("'prompt' is empty")
        hh = value.lstrip().startswith("Human:") or "\n\nHuman:" in value
        messages = parse_hh(value) if hh else [{"role": "user", "content": value.strip()}]
    elif isinstance(value, list) and all(isinstance(m, dict) for m in value):
        messages = [{"role": m.get("role"), "content": m.get("content")} for m in value]
    else:
        raise ValueError("'prompt' must be a string or a list of {role, content} messages")
    return _checked(messages, "prompt")


def _checked(messages: list[dict], key: str) -> list[dict]:
    for m in messages:
        if m["role"] not in ("system", "user", "assistant") or not isinstance(m["content"], str):
            raise ValueError(f"{key!r}: bad message {m!r}")
    if not messages or messages[-1]["role"] != "user":
        raise ValueError(f"{key!r}: the conversation must end with a user turn")
    return messages


def _response(value: Any, key: str) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        if value[0].get("role") != "assistant":
            raise ValueError(f"{key!r}: the one message must have role 'assistant'")
        value = value[0].get("content")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key!r} must be a non-empty string or one assistant message")
    return value.strip()


# ---------------------------------------------------------------- metrics


def _score(p: float | None) -> float:
    """1 if the judge prefers the correct response, 0 if not, 0.5 for a tie or abstention."""
    return 0.5 if p is None or p == 0.5 else float(p > 0.5)


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def calibration_report(
    items: list[CalibrationItem], *, n_boot: int = 1000, seed: int = 0, bins: int = 10
) -> dict:
    """Metrics of a judge over gold pairs, as a JSON-safe dict (see module docstring).

    A pair's p is the mean of its non-None order probabilities; ties (p == 0.5) and abstained
    pairs score 0.5. ``accuracy_ci`` is a seeded percentile bootstrap over pairs.
    ``a_win_rate`` counts ties as half a win; ``position_consistency`` is over pairs judged
    in two or more orders (a tie or abstention in any order is inconsistent).
    """
    if not items or n_boot < 1 or bins < 1:
        raise ValueError("calibration_report needs items, n_boot >= 1 and bins >= 1")
    for it in items:
        if len(it.p_by_order) != len(it.correct_first_by_order):
            raise ValueError("p_by_order and correct_first_by_order differ in length")
        if any(p is not None and not 0.0 <= p <= 1.0 for p in it.p_by_order):
            raise ValueError(f"probabilities must be in [0, 1] or None: {it.p_by_order}")
    pair_p = [_mean([p for p in it.p_by_order if p is not None]) for it in items]
    scores = np.array([_score(p) for p in pair_p])
    rng = np.random.default_rng(seed)
    boot = np.concatenate(
        [
            scores[rng.integers(0, len(scores), (min(100, n_boot - s), len(scores)))].mean(1)
            for s in range(0, n_boot, 100)
        ]
    )
    n_orders = max(len(it.p_by_order) for it in items)
    by_order = [
        _mean([_score(it.p_by_order[k]) for it in items if len(it.p_by_order) > k])
        for k in range(n_orders)
    ]
    multi = [it for it in items if len(it.p_by_order) >= 2]
    consistent = [
        all(p is not None for p in it.p_by_order)
        and len({float(np.sign(p - 0.5)) for p in it.p_by_order}) == 1
        and it.p_by_order[0] != 0.5
        for it in multi
    ]
    # Single-order judgments as (P(A), A is correct); None where the judge abstained.
    singles = [
        (None if p is None else (p if first else 1.0 - p), first)
        for it in items
        for p, first in zip(it.p_by_order, it.correct_first_by_order)
    ]
    judged = [(pa, first) for pa, first in singles if pa is not None]
    decided = [
        (p > 0.5, it.len_correct > it.len_incorrect)
        for p, it in zip(pair_p, items)
        if p is not None and p != 0.5 and it.len_correct != it.len_incorrect
    ]
    table, ece = [], 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(pa, f) for pa, f in judged if min(int(pa * bins), bins - 1) == b]
        pred = _mean([pa for pa, _ in inside])
        obs = _mean([float(f) for _, f in inside])
        if inside:
            ece += len(inside) / len(judged) * abs(obs - pred)
        table.append({"lo": lo, "hi": hi, "count": len(inside), "mean_predicted": pred,
                      "observed": obs})  # fmt: skip
    return {
        "n": len(items),
        "accuracy": float(scores.mean()),
        "accuracy_ci": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "ci_level": 0.95,
        "n_boot": n_boot,
        "seed": seed,
        "abstained_pairs": sum(p is None for p in pair_p),
        "accuracy_by_order": by_order,
        "position_consistency": _mean([float(c) for c in consistent]),
        "a_win_rate": _mean([_score(pa) for pa, _ in judged]),
        "judgments": len(singles),
        "abstentions": len(singles) - len(judged),
        "abstention_rate": (len(singles) - len(judged)) / len(singles) if singles else None,
        "length_bias": {
            "n": len(decided),
            "judge_prefers_longer": _mean([float(j == g) for j, g in decided]),
            "gold_prefers_longer": _mean([float(g) for _, g in decided]),
        },
        "reliability": table,
        "ece": float(ece) if judged else None,
    }


def summary_table(report: dict) -> str:
    """A short plain-text table of the report's headline numbers, for the terminal."""

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    lo, hi = report["accuracy_ci"]
    lb = report["length_bias"]
    rows = [
        ("pairs", str(report["n"])),
        ("accuracy", f"{pct(report['accuracy'])}  (95% CI {pct(lo)} to {pct(hi)})"),
        ("accuracy by order", "  ".join(pct(a) for a in report["accuracy_by_order"])),
        ("position consistency", pct(report["position_consistency"])),
        ("(A) win rate", pct(report["a_win_rate"])),
        ("abstentions", f"{report['abstentions']}/{report['judgments']} judgments "
                        f"({pct(report['abstention_rate'])}), {report['abstained_pairs']} pairs"),
        ("prefers longer", f"judge {pct(lb['judge_prefers_longer'])}, "
                           f"gold {pct(lb['gold_prefers_longer'])} (of {lb['n']} pairs)"),
        ("ECE", "n/a" if report["ece"] is None else f"{report['ece']:.3f}"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def reliability_plot(report: dict, path: Path, title: str) -> None:
    """Save the reliability diagram of P(A) (observed vs predicted, with counts) as a PNG."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CaiError("the reliability plot needs matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(5.5, 5.5))
    FigureCanvasAgg(fig)  # Agg canvas, no pyplot global state
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    full = [row for row in report["reliability"] if row["count"]]
    width = (full[0]["hi"] - full[0]["lo"]) if full else 0.1
    ax.bar([r["lo"] for r in full], [r["observed"] for r in full], width=width, align="edge",
           alpha=0.3, edgecolor="tab:blue", label="observed per bin")  # fmt: skip
    ax.plot([r["mean_predicted"] for r in full], [r["observed"] for r in full], "o-",
            color="tab:blue", label="observed vs mean predicted")  # fmt: skip
    for r in full:
        ax.annotate(str(r["count"]), (r["mean_predicted"], r["observed"]),
                    textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)  # fmt: skip
    ece = report.get("ece")
    ax.set_title(title if ece is None else f"{title}\nECE {ece:.3f}, n={report['n']} pairs")
    ax.set_xlabel("judge P(A) (the response shown first)")
    ax.set_ylabel("observed frequency that (A) was correct")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
