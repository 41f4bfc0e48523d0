"""`cai judge` on hostile input: edited files, overlapping or bad output folders,
unfinished inputs, rows without candidates, and rows too long for the judge's context."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from datasets import load_dataset

from cai.jobs import RowJournal

J = ["judge", "--judge-model", "tiny-random", "--chunk-size", "4", "--batch-size", "4"]
G = ["generate-revisions", "--model", "tiny-random", "--max-new-tokens", "8", "--no-few-shot",
     "--chunk-size", "4", "--batch-size", "4", "--no-cache"]  # fmt: skip


def _pairs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _row(i: str, prompt: str, chosen: str = "Sure, here is help.", rejected: str = "No.") -> dict:
    return {"id": i, "prompt": prompt, "chosen": chosen, "rejected": rejected}


def _rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]


@pytest.fixture
def revisions(cai, tmp_path) -> Path:
    """A finished generate-revisions folder (2 rows) to judge."""
    out = tmp_path / "rev"
    res = cai(*G, "--limit", "2", "-o", out)
    assert res.code == 0, res.err
    return out


@pytest.mark.hostile("same path, file edited in place, same ids")
def test_a_file_edited_in_place_is_judged_again(cai, tmp_path):
    src = _pairs(tmp_path / "p.jsonl", [_row("1", "Hi?"), _row("2", "Help me cook.")])
    out = tmp_path / "out"
    assert cai(*J, "--prompts", src, "-o", out).code == 0
    _pairs(src, [_row("1", "Hi?"), _row("2", "Help me cook.", chosen="Boil water first.")])
    res = cai(*J, "--prompts", src, "-o", out)
    assert res.code == 0, res.err
    s = json.loads((out / "run.json").read_text())["summary"]
    assert s["resumed_rows"] == 1 and s["changed_rows"] == 1
    assert "1 resumed, 1 changed" in res.out
    ds = load_dataset(str(out))["train"]
    by_id = {r["id"]: r for r in ds}
    assert "Boil water first." in by_id["2"]["candidates"]
    assert "Sure, here is help." not in by_id["2"]["candidates"]
    assert len(RowJournal(out / "rows.jsonl").read()[0]) == 2


@pytest.mark.hostile("`-o` equal to its input folder")
def test_output_equal_to_or_inside_the_input_is_refused(cai, revisions, tmp_path):
    before = sorted(p.name for p in (revisions / "data").iterdir())
    for out in (revisions, revisions / "data" / "x"):
        res = cai(*J, "--prompts", revisions, "-o", out)
        assert res.code == 2 and "would overwrite the input" in res.err, res.err
    (tmp_path / "o").mkdir()
    src = _pairs(tmp_path / "o" / "p.jsonl", [_row("1", "Hi?")])
    res = cai(*J, "--prompts", src, "-o", tmp_path / "o")  # the input under the output
    assert res.code == 2 and "would overwrite the input" in res.err
    assert sorted(p.name for p in (revisions / "data").iterdir()) == before
    assert load_dataset(str(revisions))["train"].num_rows == 2
    assert cai(*J, "--prompts", revisions, "-o", tmp_path / "prefs").code == 0


@pytest.mark.hostile("`-o` is a file")
def test_output_that_is_a_file_fails_before_the_judge_loads(cai, tmp_path, monkeypatch):
    from cai.config import BackendConfig

    def create(self):
        raise AssertionError("a model was loaded before the output path was checked")

    monkeypatch.setattr(BackendConfig, "create", create)
    src = _pairs(tmp_path / "p.jsonl", [_row("1", "Hi?")])
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        res = cai(*J, "--prompts", src, "-o", out)
        assert res.code == 2 and str(blocker) in res.err and "Traceback" not in res.err


@pytest.mark.hostile("an interrupted run's folder (`complete: false`) read by J")
def test_an_unfinished_input_is_refused_unless_allow_partial(cai, revisions, tmp_path):
    run_file = revisions / "run.json"
    run_file.write_text(json.dumps({**json.loads(run_file.read_text()), "complete": False}))
    res = cai(*J, "--prompts", revisions, "-o", tmp_path / "prefs")
    assert res.code == 2 and "unfinished run" in res.err and "--allow-partial" in res.err
    assert str(revisions) in res.err
    res = cai(*J, "--prompts", revisions, "--allow-partial", "-o", tmp_path / "prefs")
    assert res.code == 0, res.err
    assert "unfinished run" in res.out + res.err
    # generate-revisions reads cai folders too, and checks the same way.
    res = cai(*G, "--prompts", revisions, "-o", tmp_path / "again")
    assert res.code == 2 and "unfinished run" in res.err


@pytest.mark.hostile("no candidate columns; int chosen/rejected")
def test_rows_without_candidates_are_rejected_with_the_reason(cai, tmp_path):
    src = _pairs(
        tmp_path / "p.jsonl",
        [{"id": "1", "prompt": "Hi?"}, {"id": "2", "prompt": "Yo?", "chosen": 1, "rejected": 2}],
    )
    out = tmp_path / "out"
    res = cai(*J, "--prompts", src, "-o", out)
    assert res.code == 2, res.err
    assert "all 2 rows were rejected" in res.err and "fewer than 2 candidates (2)" in res.err
    assert str(out / "rejects.jsonl") in res.err
    reasons = {r["id"]: r["reason"] for r in _rejects(out)}
    assert "no candidates, responses or completions list" in reasons["1"]
    assert "0 text response(s) in chosen/rejected" in reasons["2"]


@pytest.mark.hostile("a 9,001-token answer to an 8,192-token model")
def test_an_answer_longer_than_the_judges_context_is_rejected(cai, tmp_path, tiny_backend):
    assert tiny_backend.context_length == 8192
    long = "word " * 9001
    assert tiny_backend.count_tokens([[{"role": "user", "content": long}]])[0] > 9000
    src = _pairs(tmp_path / "p.jsonl", [_row("ok", "Hi?"), _row("long", "Hi?", chosen=long)])
    out = tmp_path / "out"
    res = cai(*J, "--prompts", src, "-o", out)
    assert res.code == 0, res.err
    assert [r["id"] for r in load_dataset(str(out))["train"]] == ["ok"]
    (reject,) = _rejects(out)
    assert reject["id"] == "long" and reject["reason"].startswith("over context")
    assert "> 8160 available" in reject["reason"]


@pytest.mark.hostile("a 200k-character prompt or response")
def test_a_200k_character_prompt_is_rejected_fast_and_good_rows_kept(cai, tmp_path):
    huge = "x y " * 50_000
    rows = [_row("a", "Hi?"), _row("huge", huge), _row("b", "Yo?"), _row("c", "Eh?", huge)]
    src = _pairs(tmp_path / "p.jsonl", rows)
    out = tmp_path / "out"
    start = time.monotonic()
    res = cai(*J, "--prompts", src, "-o", out)
    assert res.code == 0, res.err
    assert time.monotonic() - start < 60  # deadline: today it ran 97 s, then died
    assert sorted(r["id"] for r in load_dataset(str(out))["train"]) == ["a", "b"]
    assert sorted(r["id"] for r in _rejects(out)) == ["c", "huge"]
