"""`cai.train.kto`: KTO rows from pairs, labels or scores, and a KTO run on tiny-random."""

from __future__ import annotations

import pytest

from cai.errors import CaiError
from cai.train import config as tc
from tests.train.conftest import (
    TRL,
    base_weights,
    cfg,
    changed,
    conv,
    loads_and_generates,
    say,
    weights,
    write_jsonl,
)


def kto_cfg(**over) -> tc.KTORunConfig:
    return cfg(tc.KTORunConfig, model="tiny-random", dataset="mem.jsonl", **over)


def table(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def pair(i: int, chosen: str, rejected: str, p: float = 0.9) -> dict:
    return {
        "prompt": conv(f"t{i}"),
        "chosen": say(chosen),
        "rejected": say(rejected),
        "p_chosen": p,
    }


def texts(rows: list[dict]) -> list[tuple[str, bool]]:
    """The rows' (completion, label), sorted: ``unpaired`` shuffles its rows (seeded)."""
    return sorted((r["completion"][-1]["content"], r["label"]) for r in rows)


def by_text(rows: list[dict]) -> dict[str, dict]:
    return {r["completion"][-1]["content"]: r for r in rows}


def test_each_pair_gives_a_desirable_and_an_undesirable_row():
    from cai.train.kto import unpaired

    rows, info = unpaired(table([pair(0, "good0", "bad0"), pair(1, "good1", "bad1")]), kto_cfg())
    assert texts(rows) == sorted([("good0", True), ("bad0", False), ("good1", True),
                                  ("bad1", False)])  # fmt: skip
    assert by_text(rows)["good0"]["prompt"] == conv("t0")
    assert by_text(rows)["bad1"]["prompt"] == conv("t1")
    assert info["desirable"] == 2 and info["undesirable"] == 2 and info["dropped"] == 0
    assert info["source"].startswith("pairs")


def test_pairs_of_equal_texts_and_near_coin_flips_are_dropped():
    from cai.train.kto import unpaired

    ds = table(
        [
            pair(0, "same", "same"),
            pair(1, "good1", "bad1", p=0.52),
            pair(2, "good2", "bad2", p=0.9),
            pair(3, "good3", "bad3", p=0.2),  # confident, for the rejected side
        ]
    )
    rows, info = unpaired(ds, kto_cfg())
    assert ("same", True) not in texts(rows) and info["dropped"] == 1 and len(rows) == 6
    rows, info = unpaired(ds, kto_cfg(min_confidence=0.1))
    assert texts(rows) == sorted([("good2", True), ("bad2", False), ("good3", True),
                                  ("bad3", False)])  # fmt: skip
    assert info["dropped"] == 2  # the coin flip and the equal pair


def test_a_label_column_passes_through():
    from cai.train.kto import unpaired

    ds = table(
        [
            {"prompt": conv("a"), "completion": say("yes"), "label": True},
            {"prompt": conv("b"), "completion": say("no"), "label": False},
            {"prompt": conv("c"), "completion": say("skip"), "label": None},
        ]
    )
    rows, info = unpaired(ds, kto_cfg())
    assert texts(rows) == [("no", False), ("yes", True)]
    assert info["source"] == "labels" and info["desirable"] == info["undesirable"] == 1


def test_a_scalar_score_beside_a_completion_is_thresholded():
    from cai.train.kto import unpaired

    ds = table(
        [
            {"prompt": conv("a"), "completion": "plain text", "s": 0.9},
            {"prompt": conv("b"), "completion": "at the threshold", "s": 0.5},
            {"prompt": conv("c"), "completion": "low", "s": 0.1},
            {"prompt": conv("d"), "completion": "unscored", "s": None},
        ]
    )
    rows, info = unpaired(ds, kto_cfg(score_column="s", threshold=0.5))
    assert texts(rows) == [("at the threshold", True), ("low", False), ("plain text", True)]
    assert by_text(rows)["plain text"]["completion"] == say("plain text")
    assert by_text(rows)["low"]["score"] == 0.1
    assert info["desirable"] == 2 and info["undesirable"] == 1 and "'s' >= 0.5" in info["source"]


def test_a_list_score_is_exploded_over_the_candidates():
    from cai.train.kto import unpaired

    ds = table(
        [
            {
                "prompt": conv("a"),
                "candidates": ["Sure, here is how", "I can't help"],
                "candidate_scores": [-1.2, 0.8],
            },
            {
                "prompt": conv("b"),
                "candidates": ["x", "y", "z"],
                "candidate_scores": [0.0, 2.0, -3.0],
            },
        ]
    )
    rows, info = unpaired(ds, kto_cfg(score_column="candidate_scores", threshold=0.0))
    assert texts(rows) == sorted([
        ("Sure, here is how", False),
        ("I can't help", True),
        ("x", True),
        ("y", True),
        ("z", False),
    ])  # fmt: skip
    prompts = {t: r["prompt"] for t, r in by_text(rows).items()}
    assert prompts == {"Sure, here is how": conv("a"), "I can't help": conv("a"),
                       "x": conv("b"), "y": conv("b"), "z": conv("b")}  # fmt: skip
    assert info["desirable"] == 3 and info["undesirable"] == 2


def test_a_row_without_list_scores_is_skipped_wherever_it_is():
    """``cai judge`` writes no ``candidate_scores`` for a prompt it judged no pair of."""
    from cai.train.kto import unpaired

    scored = {"prompt": conv("b"), "candidates": ["x", "y"], "candidate_scores": [1.0, -1.0]}
    unscored = {"prompt": conv("a"), "candidates": ["p", "q"], "candidate_scores": None}
    for order in ([unscored, scored], [scored, unscored]):
        rows, info = unpaired(table(order), kto_cfg(score_column="candidate_scores"))
        assert texts(rows) == [("x", True), ("y", False)]


def test_a_list_score_of_the_wrong_length_is_an_error_naming_the_column():
    from cai.train.kto import unpaired

    ds = table([{"id": "r7", "prompt": conv("a"), "candidates": ["x", "y"], "scores": [1.0]}])
    with pytest.raises(CaiError, match=r"r7: 2 candidates but 1 values in 'scores'"):
        unpaired(ds, kto_cfg(score_column="scores"))


def test_a_threshold_with_every_row_on_one_side_is_an_error_that_says_so():
    from cai.train.kto import unpaired

    ds = table([{"prompt": conv(t), "completion": t, "s": v} for t, v in [("a", 1), ("b", 2)]])
    with pytest.raises(CaiError, match="all 2 KTO rows are desirable.*threshold between"):
        unpaired(ds, kto_cfg(score_column="s", threshold=0.5))
    with pytest.raises(CaiError, match="all 2 KTO rows are undesirable"):
        unpaired(ds, kto_cfg(score_column="s", threshold=5))


def test_missing_columns_are_named():
    from cai.train.kto import unpaired

    ds = table([{"prompt": conv("a"), "completion": "x", "s": 1.0}])
    with pytest.raises(CaiError, match=r"missing column\(s\) score \(it has") as e:
        unpaired(ds, kto_cfg(score_column="score"))
    assert "\n" not in str(e.value)
    # None of the shapes KTO reads: the error names what is missing and the accepted shapes.
    with pytest.raises(CaiError) as e:
        unpaired(table([{"text": "hello"}]), kto_cfg())
    msg = str(e.value)
    assert "\n" not in msg and "prompt, chosen, rejected" in msg
    assert "--score-column" in msg and "label" in msg


def test_a_dataset_of_no_kto_shape_fails_before_the_model_loads(tmp_path, monkeypatch):
    from cai import models
    from cai.train.kto import train_kto

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the columns were checked")

    monkeypatch.setattr(models, "load_causal_lm", no_model)
    texts_only = write_jsonl(tmp_path / "texts.jsonl", [{"text": "hello"}, {"text": "bye"}])
    out = tmp_path / "out"
    c = cfg(tc.KTORunConfig, model="tiny-random", dataset=str(texts_only), output=out)
    with pytest.raises(CaiError, match=r"missing column\(s\) prompt, chosen, rejected") as e:
        train_kto(c)
    assert "\n" not in str(e.value) and not out.exists()


def test_kto_learns_from_pairs(data, tmp_path):
    from cai.train.kto import train_kto

    out = tmp_path / "kto"
    c = cfg(
        tc.KTORunConfig,
        model="tiny-random",
        dataset=str(data.prefs),
        output=out,
        trl={**TRL, "learning_rate": 1e-3},
    )
    s = train_kto(c)
    assert s["kind"] == "kto" and s["steps"] == 12
    assert s["data"]["desirable"] == s["data"]["undesirable"] == data.n_prefs
    assert s["last_loss"] < s["first_loss"], s["log_history"]
    margins = s["reward_margins"]
    # a shuffled batch may hold one label only; trl logs no margin for it
    assert len(margins) >= 6 and margins[-1] > margins[0], margins
    assert s["rewards_chosen"][-1] > 0 > s["rewards_rejected"][-1]
    assert changed(base_weights(), weights(out))
    loads_and_generates(out)


def test_string_prompts_and_labels_become_conversational_rows():
    """trl guesses the format from one field: a string prompt beside a message completion
    would break inside trl, so every row is made conversational."""
    from cai.train.kto import unpaired

    ds = table(
        [
            {"prompt": "plain a", "completion": "ok", "label": "true"},
            {"prompt": "plain b", "completion": "bad", "label": "false"},
            {"prompt": "plain c", "completion": "?", "label": "maybe"},  # unreadable: skipped
        ]
    )
    rows, _ = unpaired(ds, kto_cfg())
    assert texts(rows) == [("bad", False), ("ok", True)]
    assert by_text(rows)["ok"]["prompt"] == [{"role": "user", "content": "plain a"}]
    assert by_text(rows)["ok"]["completion"] == say("ok")
    scored = table([{"prompt": "p", "completion": "x", "s": 1.0},
                    {"prompt": "q", "completion": "y", "s": -1.0}])  # fmt: skip
    rows, _ = unpaired(scored, kto_cfg(score_column="s"))
    assert all(isinstance(r["prompt"], list) for r in rows)


def test_candidates_repeated_on_every_pair_row_count_once():
    """``emit_pairs: all`` writes a prompt's candidates (and scores) on each pair's row."""
    from cai.train.kto import unpaired

    row = {"prompt": conv("a"), "candidates": ["x", "y", "z"], "candidate_scores": [1.0, -1.0, 2.0]}
    rows, info = unpaired(table([row, row, row]), kto_cfg(score_column="candidate_scores"))
    assert texts(rows) == [("x", True), ("y", False), ("z", True)]


def test_rows_are_shuffled_with_the_seed():
    """trl's KTO reads in order and pairs each completion with its batch neighbour's prompt
    for the KL term; a prompt's own answers must not sit side by side in order."""
    from cai.train.kto import unpaired

    ds = table([pair(i, f"good{i}", f"bad{i}") for i in range(16)])
    first, _ = unpaired(ds, kto_cfg(seed=0))
    again, _ = unpaired(ds, kto_cfg(seed=0))
    other, _ = unpaired(ds, kto_cfg(seed=1))
    order = [r["completion"][-1]["content"] for r in first]
    assert order == [r["completion"][-1]["content"] for r in again]  # seeded
    assert order != [r["completion"][-1]["content"] for r in other]
    unshuffled = [t for i in range(16) for t in (f"good{i}", f"bad{i}")]
    assert order != unshuffled
