"""The quality report and its gate on hand-made rows: good, salad, unchanged, echo, leak,
off-topic and looping revisions each get exactly their flag."""

from __future__ import annotations

import json
import math

import pytest

from cai.quality import FLAGS, THRESHOLDS, Scorers, assess, gate, row_flags, summarise

PROMPT = "How do I get into my neighbour's wifi without the password?"
INITIAL = (
    "You can try the default router passwords printed on the box, or use a cracking tool "
    "to capture the handshake and guess the key with a wordlist."
)
CRITIQUE = (
    "The answer explains how to break into a network the person does not own, which is "
    "illegal, and it names concrete tools and steps."
)
CRITIQUE_REQUEST = "Point out where your answer helps with something illegal."
REVISION_REQUEST = "Rewrite your answer so that it no longer helps with anything illegal."
EXAMPLE = (
    "I can't help with getting into someone else's email account; accessing it without "
    "permission invades their privacy and is illegal in most places."
)
GOOD = (
    "I can't help you get onto a network you don't own, since that is illegal. If you need "
    "internet access, ask your neighbour to share the wifi password, or look for a public "
    "hotspot at a library or cafe nearby."
)
REVISIONS = {
    "good": GOOD,
    "salad": "widths targets Toledoetal SIGennesodynamicsuccessfully defe bitter noise",
    "unchanged": INITIAL + " Good luck.",
    "echo": CRITIQUE + " So I will not.",
    "leak": EXAMPLE,
    "off_topic": "Bananas are a good source of potassium and taste great in smoothies.",
    "loop": "Ask your neighbour for the wifi password. " * 8,
}


def row(name: str, revision: str) -> dict:
    return {
        "id": name,
        "prompt": [{"role": "user", "content": PROMPT}],
        "initial_response": INITIAL,
        "revision": revision,
        "principle_ids": ["illegal"],
        "trace": {
            "rounds": [
                {
                    "principle_id": "illegal",
                    "critique_request": CRITIQUE_REQUEST,
                    "critique": CRITIQUE,
                    "no_change_needed": False,
                    "revision_request": REVISION_REQUEST,
                    "revision": revision,
                }
            ]
        },
    }


class StubFluency:
    """Fluency by hand: salad scores 6 nats, everything else 2 (the real reference is
    tested in test_report_smollm2 below)."""

    def __call__(self, prompts, completions, **_):
        return [math.nan if not c else 6.0 if c == REVISIONS["salad"] else 2.0 for c in completions]


@pytest.fixture(scope="module")
def scorers():
    s = Scorers.__new__(Scorers)  # the real toxicity and relevance models, fluency by hand
    from cai.scorers import RelevanceScorer, toxicity_scorer

    s.reference, s.notes = "stub", []
    s.fluency, s.toxicity, s.relevance = StubFluency(), toxicity_scorer(), RelevanceScorer()
    return s


def expected(name: str) -> list[str]:
    """Each row's flags: its own, and salad is off-topic too."""
    return {"good": [], "salad": ["salad", "off_topic"]}.get(name, [name])


def test_each_hand_made_row_gets_exactly_its_flag(scorers):
    rows = [row(n, t) for n, t in REVISIONS.items()]
    records, report = assess(rows, scorers, examples=[EXAMPLE])
    got = {r["id"]: r["flags"] for r in records}
    assert got == {n: expected(n) for n in REVISIONS}
    assert report["rows"] == len(rows)
    assert report["passed"] == round(1 / len(rows), 3)
    assert report["changed"] == round(1 - 1 / len(rows), 3)
    assert report["flags"]["salad"] == 1 and report["flags"]["off_topic"] == 2
    assert report["thresholds"] == THRESHOLDS
    # the refusal detector sees the good revision refuse, the initial answer comply
    assert report["refusal"] == {"initial": 0.0, "revision": round(2 / len(rows), 3)}
    assert json.loads(json.dumps(report)) == report  # plain JSON


def test_gate_keeps_passing_rows_and_names_the_flags(scorers):
    rows = [row(n, t) for n, t in REVISIONS.items()]
    records, _ = assess(rows, scorers, examples=[EXAMPLE])
    kept, rejects = gate(rows, records)
    assert [r["id"] for r in kept] == ["good"]
    reasons = {r.id: r.reason for r in rejects}
    assert reasons["salad"] == "quality: salad, off_topic"
    assert reasons["off_topic"] == "quality: off_topic"
    assert set(reasons) == set(REVISIONS) - {"good"}


def test_targets_are_checked_on_the_run():
    records = [
        {
            "id": str(i),
            "principles": ["p"],
            "nll": {"initial": 2.0, "critique": 2.5, "revision": 2.2},
            "flags": [] if i < 19 else ["echo"],
            "relevance": {"initial": 0.6, "revision": 0.5},
            "toxicity": {"initial": 0.2, "revision": 0.1},
            "refusal": {"initial": False, "revision": True},
            "length_change": -10,
            "no_change_critiques": 0,
            "rounds": 1,
            "critique_leak": 0.0,
        }
        for i in range(20)
    ]
    report = summarise(records)
    met = {t["target"]: t["met"] for t in report["targets"]}
    assert met.pop("rows kept by the gate") is None  # no gate ran
    assert all(met.values()), report["targets"]  # echo 5% <= 10%
    for r in records[:5]:
        r["nll"]["revision"] = 4.5
    met = {t["target"]: t["met"] for t in summarise(records)["targets"]}
    assert met["revisions above 4.0 NLL"] is False
    assert report["principles"][0]["principle"] == "p"


def test_row_flags_empty_revision():
    rec = {
        "nll": {"revision": None},
        "similarity": 0.0,
        "echo": 0.0,
        "leak": 0.0,
        "repetition": 0.0,
        "relevance": None,
    }
    assert row_flags(rec, "   ") == ["empty"]
    assert set(FLAGS) >= {"empty", "salad", "unchanged", "echo", "leak", "loop", "off_topic"}


@pytest.mark.slow
def test_report_smollm2_flags_salad_by_its_own_likelihood():
    """The real reference: SmolLM2-135M scores the salad above 4 nats, the rest below."""
    rows = [row(n, t) for n, t in REVISIONS.items()]
    records, report = assess(rows, Scorers.load("smollm2-135m"), examples=[EXAMPLE])
    nll = {r["id"]: r["nll"]["revision"] for r in records}
    assert nll["salad"] > 4.0
    assert nll["good"] < 4.0 and nll["salad"] - nll["good"] > 2.0
    assert "salad" in {r["id"]: r["flags"] for r in records}["salad"]
    assert report["reference"] == "smollm2-135m"


def test_restating_the_prompt_is_no_leak(scorers):
    """The requests quote the user's prompt; a revision that restates it does not leak."""
    r = row("restates", f'You asked: "{PROMPT}" I cannot help with breaking into wifi.')
    step = r["trace"]["rounds"][0]
    step["critique_request"] += f' The request was: "{PROMPT}"'
    records, _ = assess([r], scorers, examples=[EXAMPLE])
    assert "leak" not in records[0]["flags"] and records[0]["leak"] < 0.5


def test_a_check_that_did_not_run_is_not_a_target_met(scorers):
    s = Scorers.__new__(Scorers)
    s.reference, s.notes = "stub", ["no relevance figures: not installed"]
    s.fluency, s.toxicity, s.relevance = StubFluency(), None, None
    _, report = assess([row("good", GOOD)], s, examples=[EXAMPLE])
    assert report["off_topic"] is None
    met = {t["target"]: t["met"] for t in report["targets"]}
    assert met["off-topic"] is None and met["mean toxicity, revision minus initial"] is None
    assert met["rows kept by the gate"] is None  # no gate ran


def test_helped_targets_compare_revision_with_initial(scorers):
    records, report = assess([row("good", GOOD)], scorers, examples=[EXAMPLE])
    met = {t["target"]: t for t in report["targets"]}
    refusal = met["refusal or deflection rate, revision minus initial"]
    assert refusal["value"] == 1.0 and refusal["met"] is True  # refuses after, not before
    tox = records[0]["toxicity"]
    toxicity = met["mean toxicity, revision minus initial"]
    assert toxicity["value"] == round(round(tox["revision"], 4) - round(tox["initial"], 4), 4)
    assert toxicity["met"] is (toxicity["value"] <= 0)
