"""Constitution loading, validation errors, sampling and hashing."""

from __future__ import annotations

from collections import Counter

import pytest

from cai.constitution import (
    comparison_question,
    load_constitution,
    parse_constitution,
    row_rng,
    sample_principle,
    shipped_constitutions,
)
from cai.errors import CaiError

GOOD = """\
name: tiny
principles:
  - id: a
    critique: Find the harm.
    revision: Remove the harm.
    comparison: Which is less harmful?
  - id: b
    critique: Find the rudeness.
    revision: Be polite.
    weight: 3
comparisons:
  - Which is better?
"""


def error_of(text: str, source: str = "bad.yaml") -> str:
    with pytest.raises(CaiError) as info:
        parse_constitution(text, source)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_shipped_constitutions_load_and_are_big_enough():
    names = shipped_constitutions()
    assert {"harmless", "hhh"} <= set(names) and len(names) >= 3
    assert len(load_constitution("harmless").principles) >= 12
    hhh = load_constitution("hhh")
    assert any("honest" in p.id or "honest" in " ".join(p.tags) for p in hhh.principles)


def test_duplicate_id_names_file_principle_field_and_line():
    text = GOOD.replace("  - id: b", "  - id: a")
    msg = error_of(text)
    assert msg.startswith("bad.yaml:7:")
    assert "principle 'a' (#1)" in msg and "field 'id'" in msg and "duplicate" in msg


def test_missing_revision():
    text = GOOD.replace("    revision: Be polite.\n", "")
    msg = error_of(text)
    assert "principle 'b' (#1)" in msg and "field 'revision'" in msg and "missing" in msg


def test_unknown_key_has_its_line():
    text = GOOD.replace("    weight: 3\n", "    weight: 3\n    colour: red\n")
    msg = error_of(text)
    assert msg.startswith("bad.yaml:11:") and "field 'colour'" in msg and "unknown key" in msg


def test_empty_string_and_wrong_type():
    assert "must not be empty" in error_of(GOOD.replace("Find the harm.", '"  "'))
    msg = error_of(GOOD.replace("weight: 3", "weight: [3]"))
    assert "principle 'b' (#1)" in msg and "field 'weight'" in msg
    msg = error_of(GOOD.replace("critique: Find the harm.", "critique: 12"))
    assert "field 'critique'" in msg and "string" in msg


def test_bad_yaml_and_non_mapping():
    assert "invalid YAML" in error_of("name: x\nprinciples: [\n")
    assert "mapping" in error_of("- just\n- a list\n")


def test_example_must_name_known_principle():
    text = GOOD + (
        "examples:\n  - prompt: hi\n    response: r\n    critique: c\n    revision: r\n"
        "    principle: zz\n"
    )
    msg = error_of(text)
    assert "example #0" in msg and "field 'principle'" in msg and "zz" in msg


def test_content_hash_changes_with_content_only():
    a = parse_constitution(GOOD)
    assert a.content_hash == parse_constitution(GOOD + "\n# a comment\n").content_hash
    assert a.content_hash != parse_constitution(GOOD.replace("Be polite.", "Be kind.")).content_hash


def test_sampling_is_seeded_per_row_and_follows_weights():
    c = parse_constitution(GOOD)
    first = [sample_principle(c, row_rng(7, i)).id for i in range(50)]
    # The same row gives the same choice in any order, e.g. after a resume or in a shard.
    again = [sample_principle(c, row_rng(7, i)).id for i in reversed(range(50))][::-1]
    assert first == again
    assert first != [sample_principle(c, row_rng(8, i)).id for i in range(50)]
    counts = Counter(sample_principle(c, row_rng(0, i)).id for i in range(2000))
    assert 2.4 < counts["b"] / counts["a"] < 3.7  # weight 3 against 1


def test_comparison_question_prefers_principle_then_constitution():
    c = parse_constitution(GOOD)
    rng = row_rng(0, 0)
    assert comparison_question(c, c.principle("a"), rng) == "Which is less harmful?"
    assert comparison_question(c, c.principle("b"), rng) == "Which is better?"


def test_cli_validate(cai, tmp_path):
    from tests.conftest import REPO

    shipped = sorted((REPO / "constitutions").glob("*.yaml"))
    ok = cai("constitution", "validate", *shipped)
    assert ok.code == 0 and ok.out.count("ok:") == len(shipped)
    bad = tmp_path / "dup.yaml"
    bad.write_text(GOOD.replace("  - id: b", "  - id: a"))
    res = cai("constitution", "validate", bad)
    assert res.code != 0
    assert "dup.yaml:7" in res.err and "principle 'a'" in res.err and "field 'id'" in res.err
    assert "Traceback" not in res.err


def test_cli_list_and_show(cai):
    res = cai("constitution", "list")
    assert res.code == 0 and "harmless" in res.out and "hhh" in res.out
    res = cai("constitution", "show", "harmless")
    assert res.code == 0 and "critique:" in res.out
    res = cai("constitution", "show", "no-such-thing")
    assert res.code == 2 and "unknown constitution" in res.err and "harmless" in res.err
