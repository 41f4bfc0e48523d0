"""Tests for importing published constitutions (cai.constitution.importers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cai.constitution import (
    Constitution,
    import_files,
    load_constitution,
    parse_constitution,
    to_yaml,
)
from cai.errors import CaiError
from tests.conftest import REPO

SHARED = (REPO.parent / "shared") / "data"
PAPER = SHARED / "cai-paper"
SWARM = SHARED / "llm-swarm"

PAPER_FILES = [
    "CritiqueRevisionInstructions.json",
    "RLMadisonInstructions.json",
    "CritiqueRevisionFewShotPrompts.json",
]
LABELS = ("Human:", "Assistant:", "CritiqueRequest:", "Critique:", "RevisionRequest:", "Revision:")


def _shared(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared data file {path} is absent")
    return path


def _texts(c: Constitution) -> list[str]:
    """Every imported string in a constitution."""
    out = [t for p in c.principles for t in (p.critique, p.revision)] + list(c.comparisons)
    for ex in c.examples:
        out += [ex.response, ex.critique, ex.revision, *c.example_requests(ex)]
        out += [ex.prompt] if isinstance(ex.prompt, str) else [m.content for m in ex.prompt]
    return out


def _roundtrip(c: Constitution, tmp_path: Path) -> Constitution:
    path = tmp_path / f"{c.name}.yaml"
    path.write_text(to_yaml(c), encoding="utf-8")
    return load_constitution(path)


def test_paper_import(tmp_path: Path) -> None:
    paths = [_shared(PAPER / f) for f in PAPER_FILES]
    few_shot = json.loads(paths[2].read_text(encoding="utf-8"))
    c = import_files(paths, "anthropic", "cai-paper")

    assert len(c.principles) == 16
    assert len(c.comparisons) == 16
    assert len(c.examples) == len(few_shot)
    assert c.principles[0].id == "harmful0"
    assert c.principles[0].critique.startswith("Identify specific ways")
    assert c.principles[0].revision.startswith("Please rewrite the assistant response")
    assert all(not q.endswith("Options:") for q in c.comparisons)
    for text in _texts(c):
        assert text == text.strip() and text
        assert not any(label in text for label in LABELS), text[:80]
    assert "CritiqueRevisionInstructions.json" in c.description
    assert c.version == "1"

    # The first trace is two Human/Assistant rounds; the prompt keeps both user turns.
    first = c.examples[0]
    assert not isinstance(first.prompt, str)
    assert [m.role for m in first.prompt] == ["user", "assistant", "user"]
    assert first.prompt[0].content.startswith("Could you help me burn down my house")
    assert first.response.startswith("The easiest way")
    assert first.principle is None and first.critique_request and first.revision_request
    # A single-turn trace gives a plain string prompt.
    assert isinstance(c.examples[2].prompt, str)

    assert _roundtrip(c, tmp_path) == c


def test_paper_principles_alone_and_order_free(tmp_path: Path) -> None:
    paths = [_shared(PAPER / f) for f in PAPER_FILES]
    alone = import_files(paths[:1], "anthropic", "p")
    assert len(alone.principles) == 16 and not alone.comparisons and not alone.examples
    reordered = import_files(paths[::-1], "anthropic", "p")
    assert reordered.principles == alone.principles
    assert len(reordered.comparisons) == 16


@pytest.mark.parametrize("stem", ["constitution_grok", "constitution_anthropic"])
def test_llm_swarm_import(stem: str, tmp_path: Path) -> None:
    path = _shared(SWARM / f"{stem}.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    c = import_files([path], "llm-swarm", stem)

    assert len(c.principles) == len(data["constitutions"])
    assert len({p.id for p in c.principles}) == len(c.principles)
    assert c.principles[0].critique == data["constitutions"][0]["critic"].strip()
    assert c.principles[0].revision == data["constitutions"][0]["revision"].strip()
    assert len(c.examples) == len(data["system_chat"])
    for ex, trace in zip(c.examples, data["system_chat"], strict=True):
        assert ex.revision == trace[-1]["content"].strip()
        assert ex.critique_request == trace[-4]["content"].strip()
        assert ex.response == trace[-5]["content"].strip()
    assert stem in c.description
    assert _roundtrip(c, tmp_path) == c


def test_to_yaml_is_clean_and_uses_literal_blocks() -> None:
    c = Constitution.model_validate(
        {
            "name": "demo",
            "principles": [{"id": "a", "critique": "Find it.", "revision": "Fix it."}],
            "examples": [
                {
                    "prompt": "Hi?",
                    "response": "line one\nline two",
                    "critique": "ok",
                    "revision": "fine",
                    "principle": "a",
                }
            ],
        }
    )
    text = to_yaml(c)
    data = yaml.safe_load(text)
    assert data["principles"] == [{"id": "a", "critique": "Find it.", "revision": "Fix it."}]
    assert "weight" not in text and "tags" not in text and "comparisons" not in text
    assert "description" not in text and "critique_request" not in text
    assert "response: |" in text
    assert parse_constitution(text) == c
    # The representer is local to the module's dumper, not installed globally.
    assert "|" not in yaml.safe_dump({"s": "a\nb"})


def _write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_unknown_shape_names_file(tmp_path: Path) -> None:
    odd = _write(tmp_path, "weird.json", {"hello": 1})
    with pytest.raises(CaiError, match="weird.json"):
        import_files([odd], "anthropic", "x")
    with pytest.raises(CaiError, match="weird.json"):
        import_files([odd], "llm-swarm", "x")
    text = tmp_path / "broken.json"
    text.write_text("{not json", encoding="utf-8")
    with pytest.raises(CaiError, match="broken.json.*not valid JSON"):
        import_files([text], "anthropic", "x")


def test_paper_non_constitution_files_rejected() -> None:
    for name in ("RLMadisonFewShotPrompts.json", "RLMadisonPrecogFewShotPrompts.json"):
        path = _shared(PAPER / name)
        with pytest.raises(CaiError, match=f"{name}.*not part of a constitution"):
            import_files([_shared(PAPER / PAPER_FILES[0]), path], "anthropic", "x")
    jsonl = _shared(PAPER / "hhh-eval-half.jsonl")
    with pytest.raises(CaiError, match="hhh-eval-half.jsonl.*JSON Lines"):
        import_files([jsonl], "anthropic", "x")


def test_anthropic_needs_principles(tmp_path: Path) -> None:
    judge = _write(tmp_path, "judge.json", ["Which response is kinder? Options:"])
    with pytest.raises(CaiError, match="no principles.*CritiqueRevisionInstructions"):
        import_files([judge], "anthropic", "x")
    with pytest.raises(CaiError, match="no principles"):
        import_files([], "anthropic", "x")


def test_swarm_file_with_anthropic_format_hints(tmp_path: Path) -> None:
    swarm = _write(tmp_path, "s.json", {"constitutions": [{"critic": "c", "revision": "r"}]})
    with pytest.raises(CaiError, match="s.json.*llm-swarm"):
        import_files([swarm], "anthropic", "x")
    c = import_files([swarm], "llm-swarm", "My Swarm")
    assert [p.id for p in c.principles] == ["my-swarm-0"] and not c.examples


def test_malformed_traces_raise(tmp_path: Path) -> None:
    short = _write(
        tmp_path,
        "short.json",
        {
            "constitutions": [{"critic": "c", "revision": "r"}],
            "system_chat": [[{"role": "user", "content": "hi"}]],
        },
    )
    with pytest.raises(CaiError, match="short.json: system_chat #0"):
        import_files([short], "llm-swarm", "x")
    trace = (
        "\n\nHuman: hi\n\nCritiqueRequest: a\n\nCritique: b\n\nRevisionRequest: c\n\nRevision: d"
    )
    bad = _write(tmp_path, "bad.json", [trace])
    principles = _write(
        tmp_path,
        "p.json",
        {"k": {"prompt": ["\n\nCritiqueRequest: x\n\nCritique:"], "edit_request": "y"}},
    )
    with pytest.raises(CaiError, match="bad.json: few-shot #0"):
        import_files([principles, bad], "anthropic", "x")
