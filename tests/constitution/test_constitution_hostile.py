"""Hostile constitution and import files: each is one line naming the file, exit code 2."""

from __future__ import annotations

import json
import time

import pytest

import cai.constitution.schema as constitution_module
from cai.constitution import load_constitution, parse_constitution
from cai.errors import CaiError

GOOD = """\
name: tiny
principles:
  - id: a
    critique: Find the harm.
    revision: Remove the harm.
    tags: &tags [safety, care]
  - id: b
    critique: Find the rudeness.
    revision: Be polite.
    tags: *tags
examples:
  - prompt: Hi
    response: Hello
    principle: a
    critique: Fine.
    revision: Hello!
"""


def one_line(res) -> str:
    """The error line of a CLI result that must be a one-line error with exit code 2."""
    assert res.code == 2, (res.code, res.err)
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    assert "Traceback" not in res.err
    return lines[0]


def error_of(text: str, source: str = "bad.yaml") -> str:
    with pytest.raises(CaiError) as info:
        parse_constitution(text, source)
    assert "\n" not in str(info.value)
    return str(info.value)


def examples_bomb(width: int = 2000, copies: int = 100) -> str:
    """A valid-looking constitution whose examples multiply one message ``width * copies``."""
    messages = ", ".join(["&m {role: user, content: hi}"] + ["*m"] * width)
    head = GOOD.split("examples:")[0] + "examples:\n"
    first = f"  - prompt: &p [{messages}]\n    response: r\n    principle: a\n"
    first += "    critique: c\n    revision: r\n"
    rest = "  - {prompt: *p, response: r, principle: a, critique: c, revision: r}\n" * copies
    return head + first + rest


def laughs_bomb() -> str:
    """The classic billion laughs, in a principle's text."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    body = "\n".join("      " + line for line in lines)
    return f"name: x\nprinciples:\n  - id: p\n    revision: r\n    critique:\n{body}\n"


# --- non-UTF-8 ------------------------------------------------------------------------------


@pytest.mark.hostile("a non-UTF-8 constitution")
def test_non_utf8_constitution_is_one_line_naming_file_and_line(cai, tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(GOOD.replace("Be polite.", "Sé cortés.").encode("latin-1"))
    for command in ("validate", "show"):
        line = one_line(cai("constitution", command, bad))
        assert f"{bad}:9: not UTF-8 text (byte 0xe9" in line and "save the file as UTF-8" in line
    with pytest.raises(CaiError, match="latin1.yaml:9: not UTF-8"):
        load_constitution(bad)


@pytest.mark.hostile("a non-UTF-8 import file")
def test_non_utf8_import_file_is_one_line_naming_the_file(cai, tmp_path):
    bad = tmp_path / "CritiqueRevisionInstructions.json"
    bad.write_bytes(b'{"a": {"prompt": ["Critique \xe9"], "edit_request": "Rewrite"}}')
    out = tmp_path / "out.yaml"
    line = one_line(cai("constitution", "import", bad, "--format", "anthropic", "-o", out))
    assert f"{bad}: not UTF-8 text (byte 0xe9 at offset 28)" in line
    assert not out.exists()


# --- weights ---------------------------------------------------------------------------------


@pytest.mark.hostile("weight: .inf")
@pytest.mark.parametrize("weight", [".inf", "-.inf", ".nan", "1e309"])
def test_weight_must_be_finite(cai, tmp_path, weight):
    bad = tmp_path / "w.yaml"
    bad.write_text(GOOD.replace("    tags: *tags\n", f"    tags: *tags\n    weight: {weight}\n"))
    line = one_line(cai("constitution", "validate", bad))
    assert f"{bad}:11: principle 'b' (#1): field 'weight':" in line
    assert "finite" in line or "greater than 0" in line


def test_ordinary_weights_and_small_aliases_still_load():
    c = parse_constitution(GOOD.replace("    tags: *tags\n", "    tags: *tags\n    weight: 2.5\n"))
    assert [p.weight for p in c.principles] == [1.0, 2.5]
    assert c.principles[1].tags == ("safety", "care")


# --- alias bombs and size ---------------------------------------------------------------------


@pytest.mark.hostile("an alias bomb inside examples")
def test_alias_bomb_in_examples_is_refused_fast(cai, tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(examples_bomb())
    assert bomb.stat().st_size < 50_000
    start = time.monotonic()
    line = one_line(cai("constitution", "validate", bomb))
    assert time.monotonic() - start < 10
    assert f"{bomb}:12: YAML aliases" in line and "alias bomb" in line


@pytest.mark.hostile("alias bombs in principle text")
def test_alias_bomb_in_principle_text_is_refused_by_the_same_check():
    msg = error_of(laughs_bomb())
    assert msg.startswith("bad.yaml:") and "YAML aliases" in msg and "alias bomb" in msg


@pytest.mark.hostile("an alias bomb inside examples: a recursive anchor")
def test_recursive_alias_is_refused():
    msg = error_of("name: x\nprinciples: &p [*p]\n")
    assert msg == "bad.yaml:2: a YAML alias refers to itself; remove the recursive anchor"


@pytest.mark.hostile("an alias bomb inside examples: the document size cap")
def test_document_over_the_size_cap(cai, tmp_path, monkeypatch):
    monkeypatch.setattr(constitution_module, "MAX_BYTES", 4096)
    big = tmp_path / "big.yaml"
    big.write_text(GOOD + "#" * 5000 + "\n")
    line = one_line(cai("constitution", "validate", big))
    assert f"{big}: 0.0 MiB is too big for a constitution" in line
    assert "too big" in error_of(GOOD + "#" * 5000)


def test_deeply_nested_yaml_is_a_clear_error():
    assert error_of("[" * 100_000) == "bad.yaml: invalid YAML: nested too deeply"


# --- imports -----------------------------------------------------------------------------------


def instructions() -> dict:
    return {"harm": {"prompt": ["CritiqueRequest: Find harm.\n\nCritique:"], "edit_request": "x"}}


@pytest.mark.hostile("import JSON nested 100k deep")
def test_import_json_nested_deep_is_a_clear_error(cai, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    line = one_line(
        cai("constitution", "import", deep, "--format", "anthropic", "-o", tmp_path / "o.yaml")
    )
    assert line == f"error: {deep}: JSON nested too deeply; not a constitution"


@pytest.mark.hostile("import JSON with duplicate keys")
@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            '{"harm": {"prompt": ["a"], "edit_request": "x"}, '
            '"harm": {"prompt": ["b"], "edit_request": "y"}}',
            "harm",
        ),
        ('{"harm": {"prompt": ["a"], "edit_request": "x", "edit_request": "y"}}', "edit_request"),
    ],
)
def test_import_json_duplicate_keys_is_an_error(cai, tmp_path, text, key):
    src = tmp_path / "CritiqueRevisionInstructions.json"
    src.write_text(text)
    out = tmp_path / "o.yaml"
    line = one_line(cai("constitution", "import", src, "--format", "anthropic", "-o", out))
    assert line == f"error: {src}: the key {key!r} appears twice in one object; keep one of them"
    assert not out.exists()


def test_import_still_reads_a_plain_file_with_a_bom(cai, tmp_path):
    src = tmp_path / "CritiqueRevisionInstructions.json"
    src.write_bytes(b"\xef\xbb\xbf" + json.dumps(instructions()).encode())
    out = tmp_path / "o.yaml"
    res = cai("constitution", "import", src, "--format", "anthropic", "-o", out)
    assert res.code == 0, res.err
    assert load_constitution(out).principles[0].critique == "Find harm."
