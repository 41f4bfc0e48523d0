"""Fitted judge weights: the fit, out-of-fold logits, balanced weights, the weights file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cai.errors import CaiError
from cai.judge.ensemble import (
    FEATURES,
    FORMAT,
    Ensemble,
    balanced_weights,
    fit,
    out_of_fold,
)

FEATS = ("logprob", "length")


def _pairs(n: int, seed: int) -> np.ndarray:
    """Rows oriented "correct minus incorrect": feature 0 leans positive (it carries the
    label, right about 93% of the time), feature 1 is noise."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(1.5, 1.0, n), rng.normal(0.0, 3.0, n)])


def _rows(X: np.ndarray, features=FEATS) -> list[dict[str, float]]:
    return [dict(zip(features, map(float, x))) for x in X]


def test_fit_finds_the_informative_feature():
    ens = fit(_pairs(400, 0), FEATS)
    w0, w1 = ens.weights
    assert w0 > 0.5 and w0 > 5 * abs(w1)
    fresh = _pairs(2000, 1)
    signs = np.sign(np.array(ens.logit(_rows(fresh))))
    assert (signs > 0).mean() > 0.8  # every fresh row's correct answer is first
    # the swapped presentation: negated rows, so the model must say "second is better"
    assert (np.sign(np.array(ens.logit(_rows(-fresh)))) < 0).mean() > 0.8
    assert ens.meta["n"] == 400 and ens.meta["l2"] == 1e-2


def test_logit_is_antisymmetric_and_p_complements():
    ens = fit(_pairs(200, 2), FEATS)
    X = _pairs(50, 3)
    np.testing.assert_allclose(ens.logit(_rows(-X)), -np.array(ens.logit(_rows(X))))
    np.testing.assert_allclose(np.add(ens.p(_rows(X)), ens.p(_rows(-X))), 1.0)


def test_weights_apply_to_raw_features_whatever_their_scale():
    X = _pairs(300, 4)
    small, big = fit(X, FEATS), fit(X * [1.0, 1000.0], FEATS)
    np.testing.assert_allclose(small.logit(_rows(X)), big.logit(_rows(X * [1.0, 1000.0])))


def test_separable_data_gives_finite_weights():
    X = np.abs(_pairs(100, 5))  # every feature says "first is better": perfectly separable
    ens = fit(X, FEATS)
    assert np.isfinite(ens.weights).all() and all(w > 0 for w in ens.weights)
    assert ens.p(_rows(np.array([[1e6, 1e6]]))) == [1.0]  # no overflow in the sigmoid


def test_all_zero_column_gets_zero_weight():
    X = _pairs(200, 6)
    X[:, 1] = 0.0
    ens = fit(X, FEATS)
    assert ens.weights[0] > 0.5 and abs(ens.weights[1]) < 1e-12


def test_sample_weights_change_the_fit():
    X = _pairs(200, 7)
    sw = np.where(X[:, 1] > 0, 5.0, 0.2)
    assert fit(X, FEATS, sample_weight=sw).weights != fit(X, FEATS).weights


def test_out_of_fold_holds_each_fold_out():
    X, folds, seed = _pairs(53, 8), 5, 11
    sw = np.linspace(0.5, 1.5, len(X))
    oof = out_of_fold(X, FEATS, folds=folds, seed=seed, sample_weight=sw)
    assert oof.shape == (53,)
    parts = np.array_split(np.random.default_rng(seed).permutation(len(X)), folds)
    for held in (parts[0], parts[-1]):
        train = np.setdiff1d(np.arange(len(X)), held)
        by_hand = fit(X[train], FEATS, sample_weight=sw[train])
        np.testing.assert_allclose(oof[held], by_hand.logit(_rows(X[held])))
    in_sample = np.array(fit(X, FEATS, sample_weight=sw).logit(_rows(X)))
    assert not np.allclose(oof, in_sample)
    np.testing.assert_array_equal(oof, out_of_fold(X, FEATS, folds=folds, seed=seed,
                                                   sample_weight=sw))  # fmt: skip


def test_out_of_fold_needs_a_row_per_fold():
    with pytest.raises(CaiError, match="folds"):
        out_of_fold(_pairs(4, 9), FEATS, folds=5)


def test_balanced_weights_equalise_the_length_groups():
    flags = [True] * 54 + [False] * 36 + [None] * 10
    w = balanced_weights(flags)
    longer, shorter = w[:54].sum(), w[54:90].sum()
    assert longer == pytest.approx(shorter)
    assert w.mean() == pytest.approx(1.0)
    assert (w[90:] == w[90]).all()  # ties all alike
    with pytest.raises(CaiError, match="balance"):
        balanced_weights([True, True, None])


def test_fit_rejects_bad_input():
    with pytest.raises(CaiError, match="unknown feature 'nope'"):
        fit(_pairs(20, 0), ("logprob", "nope"))
    with pytest.raises(CaiError, match="shape"):
        fit(_pairs(20, 0), ("logprob",))
    with pytest.raises(CaiError, match="l2"):
        fit(_pairs(20, 0), FEATS, l2=0.0)


def test_missing_feature_in_a_row_is_named():
    ens = Ensemble(FEATS, (1.0, 0.5), {})
    with pytest.raises(CaiError, match="row 1 has no feature 'length'"):
        ens.logit([{"logprob": 1.0, "length": 2.0}, {"logprob": 1.0}])


def test_save_load_round_trip(tmp_path: Path):
    X = _pairs(100, 10)
    ens = fit(X, FEATS, meta={"fitted_on": "gold.jsonl", "cv_accuracy": 0.61})
    path = tmp_path / "weights.json"
    ens.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["features"] == list(FEATS)
    back = Ensemble.load(path)
    assert back == ens and back.sha256 == ens.sha256
    assert back.logit(_rows(X)) == ens.logit(_rows(X))
    assert back.meta["fitted_on"] == "gold.jsonl"
    assert Ensemble(FEATS, ens.weights, {"other": 1}).sha256 == ens.sha256  # meta not hashed


def _good() -> dict:
    return {"format": FORMAT, "features": ["logprob", "length"], "weights": [1.0, -0.5],
            "meta": {}}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": "cai-judge-weights/0"}, "format"),
        ({"weights": [1.0, "big"]}, "weights[1]"),
        ({"weights": [1.0, True]}, "weights[1]"),
        ({"weights": "1.0"}, "weights"),
        ({"weights": [1.0]}, "weights"),
        ({"features": ["logprob", "length", "pointwise"]}, "weights"),
        ({"features": ["logprob", "vibes"]}, "features[1]"),
        ({"features": ["logprob", "logprob"]}, "features[1]"),
        ({"features": [3, "length"]}, "features[0]"),
        ({"meta": []}, "meta"),
    ],
)
def test_load_names_the_file_and_the_bad_field(tmp_path: Path, change: dict, field: str):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({**_good(), **change}))
    with pytest.raises(CaiError) as e:
        Ensemble.load(path)
    assert str(path) in str(e.value) and field in str(e.value)
    if field == "features[1]" and "vibes" in str(change):
        assert all(f in str(e.value) for f in FEATURES)  # lists the known names


def test_load_rejects_non_json_and_non_numbers(tmp_path: Path):
    for text in ("not json {", "[1, 2]", json.dumps({**_good(), "weights": [1.0, float("nan")]})):
        path = tmp_path / "w.json"
        path.write_text(text)
        with pytest.raises(CaiError, match="w.json"):
            Ensemble.load(path)
    with pytest.raises(CaiError, match="missing.json"):
        Ensemble.load(tmp_path / "missing.json")
