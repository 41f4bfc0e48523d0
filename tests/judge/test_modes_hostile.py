"""The judge modes for small models on hostile input: a constitution without personas or
yes/no questions, an ensemble mode without weights (or weights without the mode), a corrupt
weights file, and a backend that cannot score a whole response. Each is a one-line
``CaiError`` naming what to fix, and the ones a config can cause fail before any model
loads."""

from __future__ import annotations

import json

import pytest

from cai.config import BackendConfig, CalibrateConfig
from cai.constitution import parse_constitution
from cai.errors import CaiError
from cai.judge import PairItem, build_judge, run_calibration_from_config
from cai.judge.ensemble import Ensemble
from tests.fakes import ScriptedBackend

BARE = parse_constitution(
    "name: bare\nprinciples:\n"
    "  - id: be-kind\n    critique: Was it unkind?\n    revision: Make it kind.\n"
    "    comparison: Which is kinder?\n"
)
"""A constitution with no ``contrast`` personas and no ``pointwise`` question anywhere."""
NOWHERE = BackendConfig(model="does-not-exist")
"""An engine that cannot load: a judge that got as far as creating it would fail otherwise."""


@pytest.fixture
def no_backend(monkeypatch):
    """Creating any backend from a config fails the test."""

    def boom(self):
        raise AssertionError(f"a backend was created for {self.model!r}")

    monkeypatch.setattr(BackendConfig, "create", boom)


@pytest.mark.parametrize(("mode", "field"), [("contrast", "contrast"), ("pointwise", "pointwise")])
def test_a_constitution_without_the_modes_field_fails_before_the_backend(no_backend, mode, field):
    with pytest.raises(CaiError) as e:
        build_judge(NOWHERE, constitution=BARE, mode=mode)
    message = str(e.value)
    assert "'be-kind'" in message and f"`{field}`" in message and "'bare'" in message
    assert "\n" not in message
    build_judge(backend=ScriptedBackend(), constitution=BARE, mode="logprob")  # the rest works


def test_a_constitution_level_default_serves_every_principle(no_backend):
    with_defaults = parse_constitution(
        "name: d\npointwise: Is this response kind?\n"
        "contrast: {follows: is always kind, violates: is always cruel}\n"
        "principles:\n  - id: p\n    critique: Was it unkind?\n    revision: Make it kind.\n"
    )
    shown = {"contrast": "You are an assistant that is always cruel.",
             "pointwise": "Question: Is this response kind?"}  # fmt: skip
    for mode, text in shown.items():
        backend = ScriptedBackend(prefer=lambda conv: None)
        judge = build_judge(backend=backend, constitution=with_defaults, mode=mode)
        [result] = judge.judge([PairItem("x", [{"role": "user", "content": "Hi?"}], "Hi!", "Go.")])
        assert result.p_a == 0.5  # the script has no preference
        prompts = [m["content"] for call in backend.scored for conv in call for m in conv]
        assert any(text in p for p in prompts), mode


def test_an_ensemble_needing_a_missing_field_fails_before_the_backend(no_backend, tmp_path):
    file = tmp_path / "w.json"
    Ensemble(("logprob", "pointwise"), (1.0, 1.0)).save(file)
    with pytest.raises(CaiError, match=r"'be-kind'.*`pointwise`"):
        build_judge(NOWHERE, constitution=BARE, mode="ensemble", ensemble=file)
    Ensemble(("logprob", "length"), (1.0, 1.0)).save(file)  # needs neither field
    judge = build_judge(backend=ScriptedBackend(), constitution=BARE, mode="ensemble",
                        ensemble=file)  # fmt: skip
    assert judge.feature_names() == ("logprob", "length")


def test_calibrating_a_mode_the_constitution_cannot_serve_fails_before_the_backend(
    no_backend, tmp_path
):
    path = tmp_path / "bare.yaml"
    path.write_text(
        "name: bare\nprinciples:\n"
        "  - id: be-kind\n    critique: Was it unkind?\n    revision: Make it kind.\n"
    )
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go."}) + "\n")
    cfg = CalibrateConfig(gold=gold, output=tmp_path / "out", mode="contrast",
                          constitution=str(path), judge=NOWHERE)  # fmt: skip
    with pytest.raises(CaiError, match=r"'be-kind'.*`contrast`"):
        run_calibration_from_config(cfg)
    assert not (tmp_path / "out").exists()


def test_ensemble_mode_and_weights_file_go_together(no_backend, tmp_path):
    file = tmp_path / "w.json"
    Ensemble(("logprob",), (1.0,)).save(file)
    with pytest.raises(CaiError, match="ensemble"):
        build_judge(NOWHERE, mode="ensemble")  # no weights
    for other in ("logprob", "contrast", "pointwise", "debiased"):
        with pytest.raises(CaiError, match="ensemble"):
            build_judge(NOWHERE, mode=other, ensemble=file)  # weights, another mode


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"format": "cai-judge-weights/1", "features": ["vibes"], "weights": [1.0]}),
        json.dumps({"format": "cai-judge-weights/1", "features": ["logprob"], "weights": []}),
        json.dumps({"format": "pickle", "features": ["logprob"], "weights": [1.0]}),
    ],
)
def test_a_corrupt_weights_file_is_an_error_naming_it(no_backend, tmp_path, text):
    file = tmp_path / "corrupt-weights.json"
    file.write_text(text)
    with pytest.raises(CaiError) as e:
        build_judge(NOWHERE, mode="ensemble", ensemble=file)
    assert str(file) in str(e.value) and "\n" not in str(e.value)


def test_a_missing_weights_file_is_an_error_naming_it(no_backend, tmp_path):
    file = tmp_path / "nope.json"
    with pytest.raises(CaiError, match="nope.json"):
        build_judge(NOWHERE, mode="ensemble", ensemble=file)


def test_top_logprobs_scoring_cannot_score_a_whole_response():
    """Contrast scores each response as an option of its own; an HTTP server's top log-probs
    of the next token cannot, and the error says to use echo scoring (before any request)."""
    pytest.importorskip("httpx")
    from cai.backends.openai import OpenAIBackend
    from cai.constitution import load_constitution
    from cai.judge import Judge

    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", scoring="top_logprobs",
                            max_retries=0, timeout=1.0)  # fmt: skip
    conv = [{"role": "user", "content": "Hi?"}]
    with pytest.raises(CaiError, match="echo"):
        backend.score_options([conv], [["Hello there."]])
    judge = Judge(backend, load_constitution("harmless"), mode="contrast")
    with pytest.raises(CaiError, match="echo"):
        judge.judge([PairItem("x", conv, "Hello there.", "Go away.")])


@pytest.mark.parametrize("mode", ["all", "ensemble"])
@pytest.mark.parametrize(
    ("chosen", "limit", "error"),
    [
        ("A long, careful and kind answer.", None, "balance by length"),  # always longer
        (None, 3, "5-fold cross-validation needs at least 5 gold pairs, got 3"),
    ],
)
def test_gold_the_fits_cannot_use_is_refused_before_the_judge_loads(
    no_backend, tmp_path, mode, chosen, limit, error
):
    """`--mode all` and an ensemble's calibration fit out of fold, with length-balanced
    weights: too few pairs for the folds, or the correct response longer in every pair, is
    an error before any model loads, not after every pair was scored."""
    gold = tmp_path / "gold.jsonl"
    rows = [{"prompt": f"Question {i}?", "chosen": chosen or ("Yes." if i % 2 else "A long one."),
             "rejected": "No, never."} for i in range(6)]  # fmt: skip
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ensemble = tmp_path / "w.json" if mode == "ensemble" else None
    if ensemble:
        Ensemble(("logprob",), (1.0,)).save(ensemble)
    cfg = CalibrateConfig(gold=gold, output=tmp_path / "out", mode=mode, folds=5, limit=limit,
                          ensemble=ensemble, judge=NOWHERE)  # fmt: skip
    with pytest.raises(CaiError, match=error):
        run_calibration_from_config(cfg)
    backend = ScriptedBackend(prefer=lambda conv: None)  # a ready backend: never scored
    with pytest.raises(CaiError, match=error):
        run_calibration_from_config(cfg, backend=backend)
    assert backend.scored == [] and not (tmp_path / "out").exists()
