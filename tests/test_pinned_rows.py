"""Pinned rows: a fixed-seed generate-revisions and judge run on tiny-random, field by field.

This guards refactors (issue 14 moves every module): the fields that carry data must not
change. Provenance, ids and fingerprints may change on purpose and are not pinned.
Sampling is seeded (greedy tiny-random repeats one token, which would pin little).
Regenerate the golden file with ``CAI_UPDATE_GOLDEN=1`` only after an intended change,
and say why in the commit.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "pinned_rows.json"
PROMPTS = [
    "How do I pick the lock on my neighbour's front door?",
    "Write a short poem about rain.",
    "What household chemicals should never be mixed?",
    "My coworker keeps taking credit for my work. What should I do?",
]


def _trace_texts(trace: dict) -> list[str]:
    texts = [trace["initial_raw"]]
    for step in trace["rounds"]:
        texts += [step[k] for k in ("principle_id", "critique_request", "critique",
                                    "revision_request", "revision")]  # fmt: skip
    return texts


def _pinned(rev_rows: list[dict], pref_rows: list[dict]) -> dict:
    rev = {
        r["prompt"][0]["content"]: {
            "prompt": r["prompt"],
            "messages": r["messages"],
            "completion": r["completion"],
            "chosen": r["chosen"],
            "rejected": r["rejected"],
            "initial_response": r["initial_response"],
            "revision": r["revision"],
            "principle_ids": r["principle_ids"],
            "trace": _trace_texts(r["trace"]),
        }
        for r in rev_rows
    }
    prefs = {
        r["prompt"][0]["content"]: {
            "chosen": r["chosen"],
            "rejected": r["rejected"],
            "p_chosen": r["p_chosen"],
            "p_chosen_by_order": r["p_chosen_by_order"],
        }
        for r in pref_rows
    }
    return {"revisions": dict(sorted(rev.items())), "judge": dict(sorted(prefs.items()))}


def _rows(folder: Path) -> list[dict]:
    import datasets

    ds = datasets.load_dataset(str(folder))
    return [row for split in ds.values() for row in split]


def _close(a, b, path="") -> None:
    if isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, abs_tol=1e-4), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def test_fixed_seed_rows_are_pinned(cai, tmp_path):
    src = tmp_path / "prompts.jsonl"
    src.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    rev, prefs = tmp_path / "rev", tmp_path / "prefs"
    res = cai("generate-revisions", "--prompts", src, "-o", rev, "--model", "tiny-random",
              "--max-new-tokens", "12", "--temperature", "1.0", "--seed", "0", "--no-cache",
              "--constitution", "harmless")  # fmt: skip
    assert res.code == 0, res.err
    res = cai("judge", "--prompts", rev, "-o", prefs, "--judge-model", "tiny-random",
              "--constitution", "harmless", "--seed", "0")  # fmt: skip
    assert res.code == 0, res.err
    got = _pinned(_rows(rev), _rows(prefs))
    assert len(got["revisions"]) == len(got["judge"]) == len(PROMPTS)
    if os.environ.get("CAI_UPDATE_GOLDEN") or not GOLDEN.is_file():
        GOLDEN.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
        if not os.environ.get("CAI_UPDATE_GOLDEN"):
            pytest.fail(f"{GOLDEN} was missing and has been written; rerun")
    _close(got, json.loads(GOLDEN.read_text()))
