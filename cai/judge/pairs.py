"""What ``cai judge`` does with judged rows after judging: bias checks, pair emission, verification.

Each function reads the preference rows that ``cai.judge.run.preference_row`` makes
(columns ``candidates``, ``scores``, ``comparisons`` with ``i``, ``j``, ``p_i``, and
``chosen``/``rejected``).
"""

from __future__ import annotations

from collections import Counter


def length_bias(rows: list[dict]) -> dict:
    """How often the longer response wins, over every judged pair of unequal length.

    A pair is won by the longer response when the judge's averaged probability for it is
    above 0.5; ties (exactly 0.5) and abstentions count for neither side.

    Example: ``{"pairs": 40, "longer_wins": 0.7}``.
    """
    wins = n = 0
    for row in rows:
        cands = row["candidates"]
        for c in row["comparisons"]:
            i, j, p = c["i"], c["j"], c["p_i"]
            if p is None or p == 0.5 or len(cands[i]) == len(cands[j]):
                continue
            p_longer = p if len(cands[i]) > len(cands[j]) else 1 - p
            n += 1
            wins += p_longer > 0.5
    return {"pairs": n, "longer_wins": round(wins / n, 4) if n else None}


def expand_all_pairs(rows: list[dict]) -> list[dict]:
    """One preference row per judged pair instead of one best-vs-worst row per prompt.

    For K candidates judged on all C(K,2) pairs (or a budget of them), each judged pair
    becomes a row whose ``chosen`` is the candidate with the higher Bradley-Terry score,
    ``margin`` their score difference, and ``p_chosen`` the judge's own probability for
    that pair. Ids become ``<prompt id>-<i>-<j>``; ``pair_of`` keeps the prompt's id. A
    prompt with two candidates gives the same single row as best-vs-worst.
    """
    out: list[dict] = []
    for row in rows:
        cands, scores = row["candidates"], row["scores"]
        if len(cands) == 2:
            out.append({**row, "pair_of": row["id"]})
            continue
        for c in row["comparisons"]:
            i, j, p = c["i"], c["j"], c["p_i"]
            hi, lo = (i, j) if scores[i] >= scores[j] else (j, i)
            p_hi = None if p is None else (p if hi == i else 1 - p)
            out.append({
                **row,
                "id": f"{row['id']}-{i}-{j}",
                "pair_of": row["id"],
                "chosen": [{"role": "assistant", "content": cands[hi]}],
                "rejected": [{"role": "assistant", "content": cands[lo]}],
                "score_chosen": scores[hi],
                "score_rejected": scores[lo],
                "margin": scores[hi] - scores[lo],
                "p_chosen": p_hi,
                "flipped": c["flipped"],
            })  # fmt: skip
    return out


def verify_revisions(rows: list[dict], threshold: float) -> tuple[list[dict], dict]:
    """Keep the rows whose judge prefers the revision to the initial answer by ``threshold``.

    Input: ``cai judge`` rows made from a ``generate-revisions`` output, where candidate 0
    is the final revision and candidate 1 the initial answer, and ``revision_principles``
    lists the principles of the rounds that produced the revision. ``p_revision`` (added
    to every row) is the judge's probability that the revision is better. The report gives
    the share kept overall and per principle; the open CAI recipe assumes every revision
    is better, and this measures it.

    Example report: ``{"threshold": 0.5, "rows": 64, "kept": 41, "kept_share": 0.64,
    "per_principle": {"harm-illegal": {"rows": 9, "kept": 7, "kept_share": 0.78}, ...}}``.
    """
    kept: list[dict] = []
    used, ok = Counter(), Counter()
    for row in rows:
        first = next(c for c in row["comparisons"] if {c["i"], c["j"]} == {0, 1})
        p = first["p_i"]
        if p is not None and first["i"] != 0:
            p = 1 - p
        row["p_revision"] = p
        good = p is not None and p >= threshold
        for pid in set(row.get("revision_principles") or ["(none)"]):
            used[pid] += 1
            ok[pid] += good
        if good:
            kept.append(row)
    report = {
        "threshold": threshold,
        "rows": len(rows),
        "kept": len(kept),
        "kept_share": round(len(kept) / len(rows), 4) if rows else None,
        "per_principle": {
            pid: {"rows": used[pid], "kept": ok[pid], "kept_share": round(ok[pid] / used[pid], 4)}
            for pid in sorted(used)
        },
    }
    return kept, report
