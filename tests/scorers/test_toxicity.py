"""`cai.scorers.toxicity`: the Jigsaw port, its windows and its safe tokenizer loading."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest

from cai._util.stats import roc_auc
from tests.conftest import REPO

LABELLED = (REPO / "tests" / "fixtures") / "toxicity_labelled.jsonl"


@pytest.fixture(scope="module")
def jigsaw():
    from cai.scorers.toxicity import JigsawScorer

    return JigsawScorer()


def test_port_matches_the_original_scores(jigsaw):
    # MODELS.md: the original (TensorFlow) gives 0.989 for this insult, 0.023 for a thank-you.
    insult, thanks = jigsaw.labels(
        ["You are a worthless idiot and I hope you die.", "Thank you for your help."]
    )
    assert insult["toxic"] == pytest.approx(0.989, abs=0.01)
    assert thanks["toxic"] == pytest.approx(0.023, abs=0.01)
    assert set(insult) == {"toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"}


def test_default_scorer_separates_our_labelled_sentences(jigsaw):
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    assert len(rows) >= 60 and sum(r.get("identity", False) for r in rows) >= 10
    scores = [s["toxic"] for s in jigsaw.labels([r["text"] for r in rows])]
    pos = [s for s, r in zip(scores, rows) if r["toxic"]]
    neg = [s for s, r in zip(scores, rows) if not r["toxic"]]
    assert roc_auc(pos, neg) >= 0.9


def test_long_texts_are_scored_in_windows(jigsaw):
    insult = "You are a worthless idiot and I hope you die."
    filler = " ".join(["The weather was mild and the garden was quiet."] * 30)  # > 100 words
    windowed, tail = jigsaw.labels([insult + " " + filler, filler])
    # The original reads only the last 100 words (here: filler only) and would miss it.
    assert windowed["toxic"] > 0.5 > 0.2 > tail["toxic"]


def test_tokenizer_pickle_is_loaded_only_through_the_allow_list(tmp_path):
    from cai.scorers.toxicity import convert_tokenizer

    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path),))

    bad = tmp_path / "tokenizer.pickle"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load shutil.rmtree"):
        convert_tokenizer(bad)
    assert tmp_path.is_dir()
