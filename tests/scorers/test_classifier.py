"""`cai.scorers.classifier`: any Hugging Face classifier as a scorer."""

from __future__ import annotations

import pytest


def test_hf_classifier_scorer_keeps_every_label(tmp_path):
    from cai.scorers.classifier import HFClassifierScorer
    from tests.fakes import save_tiny_classifier

    (row,) = HFClassifierScorer(save_tiny_classifier(tmp_path)).labels(["hello there"])
    assert set(row) == {"neutral", "toxic"} and row["toxic"] + row["neutral"] == pytest.approx(1)
