"""`cai.scorers.classifier`: any Hugging Face classifier as a scorer."""

from __future__ import annotations

import pytest


def test_hf_classifier_scorer_keeps_every_label(tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from cai.models import resolve_model
    from cai.scorers.classifier import HFClassifierScorer

    path = resolve_model("tiny-random")
    cfg = AutoConfig.from_pretrained(path)
    cfg.num_labels, cfg.id2label = 2, {0: "neutral", 1: "toxic"}
    cfg.label2id = {"neutral": 0, "toxic": 1}
    tok = AutoTokenizer.from_pretrained(path)
    cfg.pad_token_id = tok.pad_token_id
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    (row,) = HFClassifierScorer(str(tmp_path)).labels(["hello there"])
    assert set(row) == {"neutral", "toxic"} and row["toxic"] + row["neutral"] == pytest.approx(1)
