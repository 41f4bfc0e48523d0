"""Tests for cai.data.read: reading prompts from every format, rejects, ids."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from cai.data import (
    PromptRow,
    Reject,
    content_id,
    parse_hh,
    read_prompts,
    shipped_prompt_set_path,
    write_rejects,
)
from cai.errors import CaiError
from tests.conftest import REPO

PALMS = (REPO.parent / "shared") / "data" / "cai-paper"
PALMS = PALMS / "palms-redteam-prompts.jsonl"
HH = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How do I pick a lock?\n\nAssistant:"
HH_TURNS = [
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "How do I pick a lock?"},
]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- formats -------------------------------------------------------------------------


def test_jsonl_prompt_strings_keep_other_columns(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": " Hi ", "topic": "x"}, {"prompt": "Yo"}])
    rows, rejects = read_prompts(str(src))
    assert rejects == []
    assert [r.conversation for r in rows] == [user("Hi"), user("Yo")]
    assert [r.index for r in rows] == [0, 1]
    assert rows[0].extra == {"topic": "x"} and rows[1].extra == {}
    assert rows[0].id == content_id(user("Hi")) and rows[0].id.startswith("p-")
    assert len(rows[0].id) == 14


def test_json_list_and_data_object(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"prompt": "A"}, {"prompt": "B"}]))
    (tmp_path / "b.json").write_text(json.dumps({"data": [{"prompt": "A"}, {"prompt": "B"}]}))
    for name in ("a.json", "b.json"):
        rows, _ = read_prompts(str(tmp_path / name))
        assert [r.conversation for r in rows] == [user("A"), user("B")]


def test_json_that_is_really_jsonl(tmp_path):
    src = write_jsonl(tmp_path / "p.json", [{"prompt": "A"}, {"prompt": "B"}])
    assert len(read_prompts(str(src))[0]) == 2


def test_csv(tmp_path):
    src = tmp_path / "p.csv"
    src.write_text('id,prompt,topic\n1,"Hello, world",a\n2,"two\nlines",b\n', encoding="utf-8")
    rows, rejects = read_prompts(str(src))
    assert rejects == []
    assert [(r.id, r.conversation, r.extra) for r in rows] == [
        ("1", user("Hello, world"), {"topic": "a"}),
        ("2", user("two\nlines"), {"topic": "b"}),
    ]


def test_csv_messages_as_json_text(tmp_path):
    src = tmp_path / "p.csv"
    msgs = json.dumps(user("Hi") + [{"role": "assistant", "content": "Hey"}])
    with open(src, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["messages"], [msgs]])
    rows, _ = read_prompts(str(src))
    assert rows[0].conversation == user("Hi")


def test_parquet_with_messages_and_json_safe_extra(tmp_path):
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "messages": [user("A"), user("B") + [{"role": "assistant", "content": "b"}]],
            "when": [datetime.datetime(2024, 1, 1), None],
            "score": [1.5, float("nan")],
        }
    )
    pq.write_table(table, tmp_path / "p.parquet")
    rows, rejects = read_prompts(str(tmp_path / "p.parquet"))
    assert rejects == []
    assert [r.conversation for r in rows] == [user("A"), user("B")]
    assert rows[0].extra == {"when": "2024-01-01T00:00:00", "score": 1.5}
    assert rows[1].extra == {"when": None, "score": None}
    json.dumps([r.extra for r in rows], allow_nan=False)


def test_save_to_disk_folder(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"prompt": "A", "k": 1}, {"prompt": "B", "k": 2}]).save_to_disk(
        str(tmp_path / "ds")
    )
    rows, _ = read_prompts(str(tmp_path / "ds"))
    assert [(r.conversation, r.extra) for r in rows] == [
        (user("A"), {"k": 1}),
        (user("B"), {"k": 2}),
    ]


def test_dataset_dict_folder_splits(tmp_path):
    import datasets

    dd = datasets.DatasetDict(
        train=datasets.Dataset.from_list([{"prompt": "train"}]),
        test=datasets.Dataset.from_list([{"prompt": "test"}]),
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    assert read_prompts(str(tmp_path / "dd"))[0][0].conversation == user("train")
    assert read_prompts(str(tmp_path / "dd"), split="test")[0][0].conversation == user("test")
    with pytest.raises(CaiError, match="no split 'valid'.*train, test"):
        read_prompts(str(tmp_path / "dd"), split="valid")


def test_shipped_set():
    path = REPO / "cai" / "prompt_sets" / "red-team.jsonl"
    if not path.is_file():
        pytest.skip("cai/prompt_sets/red-team.jsonl is not written yet")
    assert shipped_prompt_set_path("red-team") == path
    rows, _ = read_prompts("red-team")
    assert rows and all(r.conversation[-1]["role"] == "user" for r in rows)


def test_unknown_shipped_set_lists_names():
    with pytest.raises(CaiError, match="unknown prompt set 'no-such-set'"):
        shipped_prompt_set_path("no-such-set")
    with pytest.raises(CaiError, match="unknown prompt set 'no-such-set'"):
        read_prompts("no-such-set")


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(CaiError, match="no-such-owner/no-such-dataset.*Hub"):
        read_prompts("no-such-owner/no-such-dataset")


# --- columns -------------------------------------------------------------------------


def test_prompt_list_and_trailing_assistant_dropped(tmp_path):
    convo = [{"role": "system", "content": "Be nice."}, *user("Q1")]
    tail = [
        {"role": "assistant", "content": "A1"},
        *user("Q2"),
        {"role": "assistant", "content": "A2"},
    ]
    src = write_jsonl(
        tmp_path / "p.jsonl",
        [{"prompt": convo}, {"messages": convo + tail}, {"conversation": convo}],
    )
    rows, rejects = read_prompts(str(src))
    assert rejects == []
    assert rows[0].conversation == convo
    assert rows[1].conversation == convo + tail[:2]
    assert rows[2].conversation == convo


def test_hh_string_in_prompt(tmp_path):
    src = write_jsonl(
        tmp_path / "p.jsonl", [{"prompt": HH}, {"prompt": "Human: Only this\n\nAssistant:"}]
    )
    rows, _ = read_prompts(str(src))
    assert rows[0].conversation == HH_TURNS
    assert rows[1].conversation == user("Only this")


def test_hh_rlhf_chosen(tmp_path):
    chosen = HH + " Use a pick.\n\nHuman: Thanks\n\nAssistant: You're welcome."
    src = write_jsonl(tmp_path / "p.jsonl", [{"chosen": chosen, "rejected": "r"}])
    rows, _ = read_prompts(str(src))
    assert rows[0].conversation == [
        *HH_TURNS[:2],
        {"role": "user", "content": "How do I pick a lock?"},
        {"role": "assistant", "content": "Use a pick."},
        {"role": "user", "content": "Thanks"},
    ]
    assert rows[0].extra == {"rejected": "r"}


@pytest.mark.parametrize("column", ["question", "instruction", "text", "input"])
def test_fallback_columns(tmp_path, column):
    src = write_jsonl(tmp_path / "p.jsonl", [{column: "Why?", "other": 1}])
    rows, _ = read_prompts(str(src))
    assert rows[0].conversation == user("Why?") and rows[0].extra == {"other": 1}


def test_prompt_column_override_and_error(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "no", "ask": "yes"}, {"prompt": "x"}])
    rows, rejects = read_prompts(str(src), prompt_column="ask")
    assert [r.conversation for r in rows] == [user("yes")] and rows[0].extra == {"prompt": "no"}
    assert [(r.index, r.reason) for r in rejects] == [(1, "no prompt column 'ask'")]
    with pytest.raises(CaiError, match="no column 'nope'.*prompt, ask"):
        read_prompts(str(src), prompt_column="nope")


def test_parse_hh():
    assert parse_hh(HH) == HH_TURNS
    assert parse_hh("Human: a\n\nAssistant: b") == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
    ]
    assert parse_hh("Context.\n\nHuman: q\n\nAssistant:  ") == [
        {"role": "system", "content": "Context."},
        {"role": "user", "content": "q"},
    ]


# --- limit, rejects and errors -------------------------------------------------------


def test_limit_counts_rejected_rows(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a"}, {"prompt": ""}, {"prompt": "c"}])
    rows, rejects = read_prompts(str(src), limit=2)
    assert [r.conversation for r in rows] == [user("a")]
    assert [r.index for r in rejects] == [1]
    with pytest.raises(CaiError, match="at least 1"):
        read_prompts(str(src), limit=0)


def test_malformed_line_is_a_reject_and_blank_lines_are_skipped(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text('{"prompt": "a"}\n\n{"prompt": oops}\n   \n{"prompt": "b"}\n', encoding="utf-8")
    rows, rejects = read_prompts(str(src))
    assert [(r.index, r.conversation) for r in rows] == [(0, user("a")), (4, user("b"))]
    assert len(rejects) == 1
    assert rejects[0].index == 2 and rejects[0].id is None
    assert rejects[0].reason.startswith("malformed JSON on line 3")
    assert rejects[0].raw == '{"prompt": oops}'


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"prompt": "   "}, "empty prompt"),
        ({"prompt": None}, "empty prompt"),
        ({"title": "x"}, "no prompt column"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "no user turn"),
        ({"chosen": "\n\nHuman:  \n\nAssistant: hi"}, "empty prompt"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "bad role in message 0"),
        ({"messages": [{"role": "user", "content": 3}]}, "wrong type: message 0 content"),
        ({"messages": ["hi"]}, "wrong type: message 0"),
        ({"prompt": 42}, "wrong type: prompt is int"),
        ([1, 2], "wrong type: row is list"),
    ],
)
def test_bad_rows_become_rejects(tmp_path, row, reason):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "fine"}, row])
    rows, rejects = read_prompts(str(src))
    assert [r.conversation for r in rows] == [user("fine")]
    assert len(rejects) == 1 and rejects[0].index == 1
    assert rejects[0].reason.startswith(reason)
    assert rejects[0].raw == json.dumps(row)


def test_duplicate_source_id(tmp_path):
    rows_in = [{"id": 7, "prompt": "a"}, {"id": "7", "prompt": "b"}, {"id": 8, "prompt": "c"}]
    rows, rejects = read_prompts(str(write_jsonl(tmp_path / "p.jsonl", rows_in)))
    assert [r.id for r in rows] == ["7", "8"]
    assert [(r.index, r.id, r.reason) for r in rejects] == [
        (1, "7", "duplicate id '7' (also row 1)")
    ]


def test_raw_is_truncated(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "ok"}, {"prompt": " ", "pad": "x" * 2000}])
    _, rejects = read_prompts(str(src))
    assert len(rejects[0].raw) <= 500


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("bad.parquet", b"\x00garbage\xff" * 50, "cannot read .*bad.parquet as Parquet"),
        ("bad.json", b"{not json", "bad.json is not valid JSON"),
        ("bad.csv", b"\xff\xfe\x00garbage", "cannot read .*bad.csv as CSV"),
        ("bad.txt", b"hello", "unsupported file type"),
        ("empty.jsonl", b"\n\n", "empty.jsonl has no rows"),
    ],
)
def test_unreadable_files(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CaiError, match=match):
        read_prompts(str(tmp_path / name))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CaiError, match="missing.jsonl does not exist"):
        read_prompts(str(tmp_path / "missing.jsonl"))
    (tmp_path / "notads").mkdir()
    with pytest.raises(CaiError, match="not a folder written by Dataset.save_to_disk"):
        read_prompts(str(tmp_path / "notads"))


def test_all_rows_bad_is_an_error(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"title": "a"}, {"title": "b"}, {"prompt": ""}])
    with pytest.raises(CaiError, match=r"all 3 rows were rejected.*no prompt column \(2\)"):
        read_prompts(str(src))
    garbage = tmp_path / "g.jsonl"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary\n")
    with pytest.raises(CaiError, match="g.jsonl: all 3 rows were rejected.*malformed JSON"):
        read_prompts(str(garbage))


# --- ids and rejects file ------------------------------------------------------------


def test_content_ids_are_stable_and_order_free(tmp_path):
    data = [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "a"}, {"messages": user("b")}]
    first, _ = read_prompts(str(write_jsonl(tmp_path / "1.jsonl", data)))
    again, _ = read_prompts(str(write_jsonl(tmp_path / "2.jsonl", data)))
    flipped, _ = read_prompts(str(write_jsonl(tmp_path / "3.jsonl", data[::-1])))
    ids = [r.id for r in first]
    a, b = content_id(user("a")), content_id(user("b"))
    assert ids == [a, b, f"{a}-2", f"{b}-2"]
    assert [r.id for r in again] == ids
    assert {r.id: r.conversation for r in flipped} == {r.id: r.conversation for r in first}


def test_write_rejects_round_trip(tmp_path):
    rejects = [
        Reject(2, None, "malformed JSON on line 3: Expecting value", "{oops"),
        Reject(5, "x", "empty prompt", '{"id": "x", "prompt": "é"}'),
    ]
    out = tmp_path / "sub" / "rejects.jsonl"
    write_rejects(out, rejects)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [Reject(**json.loads(line)) for line in lines] == rejects
    assert json.loads(lines[1]) == asdict(rejects[1])


# --- the real PALMS red-team prompts -------------------------------------------------


def test_palms_redteam_prompts():
    if not PALMS.is_file():
        pytest.skip(f"{PALMS} is not here")
    rows, rejects = read_prompts(str(PALMS))
    assert len(rows) == 40 and rejects == []
    assert all(isinstance(r, PromptRow) for r in rows)
    assert all(r.conversation[-1]["role"] == "user" for r in rows)
    assert not any("Human:" in m["content"] for r in rows for m in r.conversation)
    assert not any("Assistant:" in m["content"] for r in rows for m in r.conversation)
    assert len({r.id for r in rows}) == 40


def test_csv_row_with_too_many_fields_is_a_reject(tmp_path):
    src = tmp_path / "p.csv"
    src.write_text("prompt\nfine\nbad,extra\n", encoding="utf-8")
    rows, rejects = read_prompts(str(src))
    assert [r.conversation for r in rows] == [user("fine")]
    assert [(r.index, r.reason) for r in rejects] == [
        (1, "malformed CSV on line 3: too many fields")
    ]


def test_reject_keeps_the_source_id(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "x"}, {"id": "b", "prompt": ""}])
    _, rejects = read_prompts(str(src))
    assert [(r.id, r.reason) for r in rejects] == [("b", "empty prompt")]
