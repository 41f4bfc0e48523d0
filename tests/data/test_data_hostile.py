"""Hostile prompt files: lone surrogates, ids that collide with content ids, deep nesting.

Each row-level problem becomes a ``Reject`` with its reason, and the other rows go on;
``generate-revisions`` (G) and ``judge`` (J) are run for real on ``tiny-random``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cai.data import content_id, read_prompts, write_rejects

G = ["generate-revisions", "--model", "tiny-random", "--max-new-tokens", "8", "--no-few-shot"]
G += ["--chunk-size", "4"]
J = ["judge", "--judge-model", "tiny-random", "--chunk-size", "4"]


def write_lines(path: Path, lines: list[str]) -> Path:
    """Write JSON lines as given: ``"\\ud800"`` stays an escape, as a hostile file has it."""
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def output_rows(out: Path) -> list[dict]:
    return [
        r for f in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(f).to_pylist()
    ]


def rejects_of(out: Path) -> list[dict]:
    text = (out / "rejects.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# --- lone surrogates ------------------------------------------------------------------


@pytest.mark.hostile("a lone surrogate (`\\ud800`) in one row, with or without an id")
@pytest.mark.parametrize(
    ("line", "where", "source_id"),
    [
        (r'{"prompt": "bad \ud800 row"}', "column 'prompt'", None),
        (r'{"id": "x\ud800", "prompt": "fine"}', "column 'id'", "x\\ud800"),
        (r'{"id": "7", "prompt": "fine", "topic": "\udfff"}', "column 'topic'", "7"),
        (r'{"prompt": "q", "candidates": ["a", "b\ud800"]}', "column 'candidates'[1]", None),
        (
            r'{"messages": [{"role": "user", "content": "\ud800"}]}',
            "column 'messages'[0].content",
            None,
        ),
        (r'{"prompt": "q", "m\ud800": 1}', "the name of column 'm\\ud800'", None),
    ],
)
def test_lone_surrogate_rejects_only_its_row(tmp_path, line, where, source_id):
    src = write_lines(tmp_path / "p.jsonl", ['{"prompt": "good"}', line, '{"prompt": "also good"}'])
    rows, rejects = read_prompts(str(src))
    assert [r.conversation for r in rows] == [user("good"), user("also good")]
    assert [(r.index, r.id) for r in rejects] == [(1, source_id)]
    assert rejects[0].reason.startswith(f"invalid unicode: lone surrogate in {where}")
    # The reject can be saved: the surrogate is written as an escape, not a crash.
    write_rejects(tmp_path / "rejects.jsonl", rejects)
    saved = json.loads((tmp_path / "rejects.jsonl").read_text(encoding="utf-8"))
    assert saved["reason"] == rejects[0].reason and "\\u" in saved["raw"]


@pytest.mark.hostile("a lone surrogate (`\\ud800`) in one row, with or without an id")
def test_generate_revisions_rejects_a_lone_surrogate_and_goes_on(cai, tmp_path):
    src = write_lines(
        tmp_path / "p.jsonl",
        [
            '{"id": "1", "prompt": "hello there"}',
            r'{"prompt": "bad \ud800 row"}',
            r'{"id": "x\ud800", "prompt": "fine"}',
            '{"id": "2", "prompt": "another good one"}',
        ],
    )
    out = tmp_path / "out"
    res = cai(*G, "--prompts", src, "-o", out)
    assert res.code == 0, res.err
    assert sorted(r["id"] for r in output_rows(out)) == ["1", "2"]
    rejects = rejects_of(out)
    assert [(r["index"], r["id"]) for r in rejects] == [(1, None), (2, "x\\ud800")]
    assert all(r["reason"].startswith("invalid unicode: lone surrogate") for r in rejects)
    assert "column 'prompt'" in rejects[0]["reason"] and "column 'id'" in rejects[1]["reason"]


@pytest.mark.hostile("J: a lone surrogate in a candidate")
def test_judge_rejects_a_lone_surrogate_in_a_candidate_and_goes_on(cai, tmp_path):
    src = write_lines(
        tmp_path / "p.jsonl",
        [
            '{"id": "ok", "prompt": "hi", "chosen": "a", "rejected": "b"}',
            r'{"id": "c", "prompt": "hi2", "chosen": "a\ud800", "rejected": "b"}',
            r'{"prompt": "hi3", "candidates": ["a", "b\udfff"]}',
        ],
    )
    out = tmp_path / "out"
    res = cai(*J, "--prompts", src, "-o", out)
    assert res.code == 0, res.err
    assert [r["id"] for r in output_rows(out)] == ["ok"]
    reasons = {r["index"]: r["reason"] for r in rejects_of(out)}
    assert reasons[1].startswith("invalid unicode: lone surrogate in column 'chosen'")
    assert reasons[2].startswith("invalid unicode: lone surrogate in column 'candidates'[1]")


# --- ids --------------------------------------------------------------------------------


@pytest.mark.hostile("an explicit id equal to another row's generated id (explicit first)")
def test_explicit_id_then_the_same_generated_id_rejects_the_later_row(tmp_path):
    taken = content_id(user("b"))
    src = write_lines(
        tmp_path / "p.jsonl",
        [json.dumps({"id": taken, "prompt": "a"}), '{"prompt": "b"}', '{"prompt": "c"}'],
    )
    rows, rejects = read_prompts(str(src))
    assert [(r.id, r.conversation) for r in rows] == [
        (taken, user("a")),
        (content_id(user("c")), user("c")),
    ]
    assert [(r.index, r.id) for r in rejects] == [(1, None)]
    assert rejects[0].reason == (
        f"duplicate id {taken!r}: this row's content id is the id given to row 1"
    )


@pytest.mark.hostile("an explicit id equal to another row's generated id (generated first)")
def test_generated_id_then_the_same_explicit_id_rejects_the_later_row(tmp_path):
    taken = content_id(user("b"))
    src = write_lines(
        tmp_path / "p.jsonl",
        ['{"prompt": "b"}', '{"prompt": "c"}', json.dumps({"id": taken, "prompt": "a"})],
    )
    rows, rejects = read_prompts(str(src))
    assert [r.id for r in rows] == [taken, content_id(user("c"))]
    assert [(r.index, r.id, r.reason) for r in rejects] == [
        (2, taken, f"duplicate id {taken!r} (the content id of row 1)")
    ]


@pytest.mark.hostile("an explicit id equal to another row's generated id (a repeat's -2 id)")
def test_explicit_id_equal_to_a_repeats_suffixed_id(tmp_path):
    second = content_id(user("b")) + "-2"
    src = write_lines(
        tmp_path / "p.jsonl",
        [json.dumps({"id": second, "prompt": "a"}), '{"prompt": "b"}', '{"prompt": "b"}'],
    )
    rows, rejects = read_prompts(str(src))
    assert [r.id for r in rows] == [second, content_id(user("b"))]
    assert [(r.index, r.reason.split(":")[0]) for r in rejects] == [(2, f"duplicate id {second!r}")]


@pytest.mark.hostile("an explicit id equal to another row's generated id")
def test_generate_revisions_rejects_the_colliding_id_before_generating(cai, tmp_path):
    taken = content_id(user("b"))
    src = write_lines(
        tmp_path / "p.jsonl", [json.dumps({"id": taken, "prompt": "a"}), '{"prompt": "b"}']
    )
    out = tmp_path / "out"
    res = cai(*G, "--prompts", src, "-o", out)
    assert res.code == 0, res.err
    assert [r["id"] for r in output_rows(out)] == [taken]
    [reject] = rejects_of(out)
    assert reject["index"] == 1 and taken in reject["reason"]


# --- nesting ----------------------------------------------------------------------------


def test_deeply_nested_line_is_a_reject(tmp_path):
    deep = '{"prompt": "x", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    src = write_lines(tmp_path / "p.jsonl", ['{"prompt": "good"}', deep])
    rows, rejects = read_prompts(str(src))
    assert [r.conversation for r in rows] == [user("good")]
    assert [(r.index, r.reason) for r in rejects] == [
        (1, "malformed JSON on line 2: nested too deeply")
    ]


def test_row_nested_near_the_limit_is_a_reject_or_kept(tmp_path):
    # json decodes ~990 levels, and the reader then walks them: never a RecursionError.
    depth = 980
    deep = '{"prompt": "x", "extra": ' + "[" * depth + "]" * depth + "}"
    src = write_lines(tmp_path / "p.jsonl", ['{"prompt": "good"}', deep])
    rows, rejects = read_prompts(str(src))
    assert rows[0].conversation == user("good")
    assert len(rows) + len(rejects) == 2
    assert all("nested too deeply" in r.reason for r in rejects)


@pytest.mark.parametrize("depth", [900, 940, 960, 980, 995])
def test_row_nested_near_the_limit_without_a_prompt_is_a_reject(tmp_path, depth):
    # Near the decoder's limit a row either fails to decode or is rejected: never a crash.
    deep = '{"other": ' + "[" * depth + "]" * depth + "}"
    src = write_lines(tmp_path / "p.jsonl", ['{"prompt": "good"}', deep])
    rows, rejects = read_prompts(str(src))
    assert [r.conversation for r in rows] == [user("good")]
    assert [r.index for r in rejects] == [1]
    assert rejects[0].reason.startswith(("no prompt column", "malformed JSON on line 2: nested"))
