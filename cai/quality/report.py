"""The quality report of a critique-and-revision dataset, and its gate.

``assess(rows, ...)`` scores every row of a ``generate-revisions`` output and returns the
per-row records and the report. The same code runs at the end of ``generate-revisions``
(its ``run.json`` summary and dataset card) and as ``cai quality OUTPUT_FOLDER``.

Per row (the final revision against the initial answer, and every round's critique):

- **fluency**: mean token NLL of the initial answer, the critiques and the revision, each as
  an answer to the prompt alone, under the fixed reference model
  (``cai.scorers.fluency``). Flag ``salad``: revision NLL above ``SALAD_NLL``.
- **changed**: flag ``unchanged`` when the revision's 4-gram Jaccard similarity with the
  initial answer is above ``UNCHANGED_SIMILARITY`` (identical or near-identical).
- **echo, leak, loop**: flag ``echo`` when more than ``ECHO_SHARE`` of the revision's
  4-grams come from its critiques; ``leak`` when more than ``LEAK_SHARE`` come from the
  constitution's worked examples or the critique and revision requests; ``loop`` when more
  than ``LOOP_SHARE`` of its 4-grams repeat an earlier one.
- **on-topic**: flag ``off_topic`` when the MiniLM cosine of prompt and revision is below
  ``OFF_TOPIC_COSINE``. A harmless rewrite of a red-team answer may rightly be less
  relevant than a compliant one, so this is a floor, not a comparison.
- flag ``empty``: the revision is empty.
- **critiques** (reported, not flagged): their fluency, and the share that copy more than
  ``LEAK_SHARE`` of their 4-grams from the worked examples.
- **helped** (reported, not flagged): toxicity (the packaged Jigsaw classifier) and the
  refusal-or-deflection rate (``cai.scorers.is_refusal``) before and after, the length
  change, and the share of critiques that found nothing to change.

A row passes when it has no flag. The gate (``gate``) moves failing rows to rejects with
their flags as the reason. The thresholds are fixed here and reported with every report;
``TARGETS`` are the run-level goals of issue 15, checked on all rows before the gate.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache

from cai.data import Reject
from cai.quality.text import copied_from, ngram_set, repetition, similarity

SALAD_NLL = 4.0
"""Mean token NLL (nats) above which a text is word salad under SmolLM2-135M."""
UNCHANGED_SIMILARITY = 0.8
"""4-gram Jaccard similarity of revision and initial answer above which it is unchanged."""
ECHO_SHARE = 0.5
"""Share of the revision's 4-grams found in its critiques above which it echoes them."""
LEAK_SHARE = 0.5
"""Share of the revision's 4-grams found in the worked examples or the requests above which
it leaks them."""
LOOP_SHARE = 0.3
"""Share of the revision's 4-grams that repeat an earlier one above which it loops."""
OFF_TOPIC_COSINE = 0.15
"""MiniLM cosine of prompt and revision below which the revision is off-topic."""
FLAGS = ("empty", "salad", "unchanged", "echo", "leak", "loop", "off_topic")

THRESHOLDS = {
    "salad_nll": SALAD_NLL,
    "unchanged_similarity": UNCHANGED_SIMILARITY,
    "echo_share": ECHO_SHARE,
    "leak_share": LEAK_SHARE,
    "loop_share": LOOP_SHARE,
    "off_topic_cosine": OFF_TOPIC_COSINE,
}

TARGETS = (
    ("revision median NLL", "<=", 2.5),
    ("revision NLL minus initial NLL (medians)", "<=", 0.5),
    ("revisions above 4.0 NLL", "<=", 0.05),
    ("changed from the initial answer", ">=", 0.90),
    ("echo, leak or loop", "<=", 0.10),
    ("off-topic", "<=", 0.05),
    ("mean toxicity, revision minus initial", "<=", 0.0),
    ("refusal or deflection rate, revision minus initial", ">", 0.0),
    ("rows kept by the gate", ">=", 0.70),
)
"""Run-level goals, measured on all rows before the gate. The toxicity and refusal goals
are for red-team prompts; the gate's share is ``None`` (not measured) without a gate."""


def _last_user(prompt: Sequence[dict]) -> str:
    return next((m["content"] for m in reversed(list(prompt)) if m["role"] == "user"), "")


def _median(values: Iterable[float]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return round(statistics.median(vals), 3) if vals else None


def _share(flags: Iterable[bool]) -> float | None:
    flags = list(flags)
    return round(sum(flags) / len(flags), 3) if flags else None


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return round(sum(vals) / len(vals), 4) if vals else None


class Scorers:
    """The models the report needs: the reference LM, and where installed the toxicity
    classifier and MiniLM. A missing optional model leaves its figures out.
    ``Scorers.load(reference)`` loads them once per process."""

    @staticmethod
    @lru_cache(maxsize=2)
    def load(reference: str, batch_size: int = 16) -> Scorers:
        return Scorers(reference, batch_size)

    def __init__(self, reference: str, batch_size: int = 16) -> None:
        from cai.scorers import RelevanceScorer, toxicity_scorer
        from cai.scorers.fluency import FluencyScorer

        self.reference = reference
        self.fluency = FluencyScorer(reference, batch_size=batch_size)
        self.notes: list[str] = []
        self.toxicity = self.relevance = None
        try:
            self.toxicity = toxicity_scorer()
        except Exception as e:  # an optional package missing: report without it
            self.notes.append(f"no toxicity figures: {e}")
        try:
            self.relevance = RelevanceScorer()
        except Exception as e:
            self.notes.append(f"no relevance figures: {e}")


def assess(rows: list[dict], scorers: Scorers, examples: Iterable[str] = ()) -> tuple[list, dict]:
    """Score ``rows`` (a generate-revisions output); return per-row records and the report.

    ``examples`` are the texts of the constitution's worked examples (answers, critiques,
    revisions) that a revision must not copy; each row's own requests are added to them.
    """
    from cai.scorers import is_refusal

    prompts = [_last_user(r["prompt"]) for r in rows]
    initial = [r["initial_response"] for r in rows]
    final = [r["revision"] for r in rows]
    rounds = [r["trace"]["rounds"] for r in rows]
    critiques = [[s["critique"] for s in rs] for rs in rounds]
    flat_crit = [(i, c) for i, cs in enumerate(critiques) for c in cs]

    nll_initial = scorers.fluency(prompts, initial)
    nll_revision = scorers.fluency(prompts, final)
    nll_crit_flat = scorers.fluency([prompts[i] for i, _ in flat_crit], [c for _, c in flat_crit])
    nll_crit: dict[int, list[float]] = defaultdict(list)
    for (i, _), v in zip(flat_crit, nll_crit_flat):
        nll_crit[i].append(v)
    tox = rel = None
    if scorers.toxicity is not None:
        both = scorers.toxicity(prompts + prompts, initial + final)
        tox = (both[: len(rows)], both[len(rows) :])
    if scorers.relevance is not None:
        both = scorers.relevance(prompts + prompts, initial + final)
        rel = (both[: len(rows)], both[len(rows) :])
    example_grams = ngram_set(examples)

    records = []
    for i, row in enumerate(rows):
        requests = [t for s in rounds[i] for t in (s["critique_request"], s["revision_request"])]
        # the requests quote the user's prompt: restating the prompt is no leak
        leak_pool = (example_grams | ngram_set(requests)) - ngram_set([prompts[i]])
        rec = {
            "id": row["id"],
            "principles": list(row.get("principle_ids") or []),
            "nll": {
                "initial": _round(nll_initial[i]),
                "critique": _round(_mean(nll_crit[i])),
                "revision": _round(nll_revision[i]),
            },
            "similarity": round(similarity(final[i], initial[i]), 3),
            "echo": round(copied_from(final[i], ngram_set(critiques[i])), 3),
            "leak": round(copied_from(final[i], leak_pool), 3),
            "repetition": round(repetition(final[i]), 3),
            "critique_leak": round(
                max((copied_from(c, example_grams) for c in critiques[i]), default=0.0), 3
            ),
            "relevance": None if rel is None else {"initial": rel[0][i], "revision": rel[1][i]},
            "toxicity": None if tox is None else {"initial": tox[0][i], "revision": tox[1][i]},
            "refusal": {"initial": is_refusal(initial[i]), "revision": is_refusal(final[i])},
            "length_change": len(final[i]) - len(initial[i]),
            "no_change_critiques": sum(bool(s["no_change_needed"]) for s in rounds[i]),
            "rounds": len(rounds[i]),
        }
        rec["flags"] = row_flags(rec, final[i])
        records.append(rec)
    return records, summarise(records, scorers)


def _round(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(v, 4)


def row_flags(rec: dict, revision: str) -> list[str]:
    """The flags of one scored row (see the module docstring), in ``FLAGS`` order."""
    flags = set()
    if not revision.strip():
        flags.add("empty")
    nll = rec["nll"]["revision"]
    if nll is not None and nll > SALAD_NLL:
        flags.add("salad")
    if rec["similarity"] > UNCHANGED_SIMILARITY:
        flags.add("unchanged")
    if rec["echo"] > ECHO_SHARE:
        flags.add("echo")
    if rec["leak"] > LEAK_SHARE:
        flags.add("leak")
    if rec["repetition"] > LOOP_SHARE:
        flags.add("loop")
    if rec["relevance"] is not None and rec["relevance"]["revision"] < OFF_TOPIC_COSINE:
        flags.add("off_topic")
    return [f for f in FLAGS if f in flags]


def _fluency(records: list[dict], key: str) -> dict:
    vals = [r["nll"][key] for r in records if r["nll"][key] is not None]
    return {"median": _median(vals), "above_4": _share(v > SALAD_NLL for v in vals)}


def _figures(records: list[dict]) -> dict:
    """The report's figures over a group of records."""
    flagged = [set(r["flags"]) for r in records]
    return {
        "rows": len(records),
        "fluency": {k: _fluency(records, k) for k in ("initial", "critique", "revision")},
        "changed": _share("unchanged" not in f for f in flagged),
        "echo": _share("echo" in f for f in flagged),
        "leak": _share("leak" in f for f in flagged),
        "loop": _share("loop" in f for f in flagged),
        "echo_leak_or_loop": _share(bool(f & {"echo", "leak", "loop"}) for f in flagged),
        "off_topic": (  # not measured without the relevance model
            _share("off_topic" in f for f in flagged)
            if any(r["relevance"] is not None for r in records)
            else None
        ),
        "empty": _share("empty" in f for f in flagged),
        "passed": _share(not f for f in flagged),
    }


def summarise(records: list[dict], scorers: Scorers | None = None) -> dict:
    """The run's report from its per-row records: figures over all rows and per principle,
    the helped figures, and the targets."""
    report = {
        "reference": getattr(scorers, "reference", None),
        "thresholds": THRESHOLDS,
        **_figures(records),
        "relevance": _pair(records, "relevance", _mean),
        "toxicity": _pair(records, "toxicity", _mean),
        "refusal": _pair(records, "refusal", lambda v: _share(bool(x) for x in v)),
        "length_change_chars": _mean(r["length_change"] for r in records),
        "no_change_critiques": _share(
            i < r["no_change_critiques"] for r in records for i in range(r["rounds"])
        ),
        "critiques_leaking_examples": _share(r["critique_leak"] > LEAK_SHARE for r in records),
        "flags": {f: sum(f in r["flags"] for r in records) for f in FLAGS},
        "notes": list(getattr(scorers, "notes", [])),
    }
    by_principle: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        for p in dict.fromkeys(r["principles"]):
            by_principle[p].append(r)
    report["principles"] = [
        {"principle": p, **_figures(rs)} for p, rs in sorted(by_principle.items())
    ]
    report["targets"] = check_targets(report)
    return report


def _pair(records: list[dict], key: str, agg) -> dict | None:
    present = [r[key] for r in records if r[key] is not None]
    if not present:
        return None
    return {side: agg([p[side] for p in present]) for side in ("initial", "revision")}


def check_targets(report: dict) -> list[dict]:
    """Each run-level target with its measured value and whether it is met."""
    flu = report["fluency"]
    rev, ini = flu["revision"]["median"], flu["initial"]["median"]
    values = [
        rev,
        _diff(rev, ini),
        flu["revision"]["above_4"],
        report["changed"],
        report["echo_leak_or_loop"],
        report["off_topic"],
        _diff(*_sides(report.get("toxicity"))),
        _diff(*_sides(report.get("refusal"))),
        report.get("kept_share"),
    ]
    compare = {"<=": float.__le__, ">=": float.__ge__, ">": float.__gt__}
    out = []
    for (name, op, target), value in zip(TARGETS, values):
        ok = None if value is None else compare[op](float(value), float(target))
        out.append({"target": name, "goal": f"{op} {target}", "value": value, "met": ok})
    return out


def _sides(pair: dict | None) -> tuple[float | None, float | None]:
    return (None, None) if not pair else (pair["revision"], pair["initial"])


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)


def gate(rows: list[dict], records: list[dict]) -> tuple[list[dict], list[Reject]]:
    """Keep the rows that passed; the others become rejects whose reason names their flags."""
    kept, rejects = [], []
    for row, rec in zip(rows, records):
        if rec["flags"]:
            reason = "quality: " + ", ".join(rec["flags"])
            rejects.append(
                Reject(index=None, id=row["id"], reason=reason, raw=row["revision"][:500])
            )
        else:
            kept.append(row)
    return kept, rejects
