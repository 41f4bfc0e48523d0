"""Prompt templates: every shipped template renders with every shipped constitution."""

from __future__ import annotations

from pathlib import Path

import pytest

from cai.constitution import load_constitution, parse_constitution, shipped_constitutions
from cai.errors import CaiError
from cai.prompts import example_context, render, template_names

GOLDEN = Path(__file__).parent / "golden"
EXPECTED = {"critique", "revision", "compare", "compare_cot", "refusal", "pointwise", "persona"}
SMALL = parse_constitution(
    "name: t\nprinciples:\n  - id: p\n    critique: Criticise it.\n    revision: Fix it.\n"
    "    comparison: Which is kinder?\n"
)


def test_shipped_templates_are_exactly_the_expected_ones():
    """A template that nothing uses is dead; a new one needs its golden file here."""
    assert set(template_names()) == EXPECTED


@pytest.mark.parametrize("name", shipped_constitutions())
def test_every_template_renders_with_every_principle(name):
    c = load_constitution(name)
    for principle in c.principles:
        ctx = example_context(c, principle)
        for template in template_names():
            text = render(template, **ctx)
            assert text.strip(), (name, principle.id, template)
            assert "{{" not in text and "{%" not in text
        assert principle.critique in render("critique", **ctx)
        assert principle.revision in render("revision", **ctx)
        compare = render("compare", **ctx)
        assert ctx["question"] in compare and "(A)" in compare and "(B)" in compare
        contrast = principle.contrast or c.contrast
        for persona in (contrast.follows, contrast.violates):
            assert persona in render("persona", **{**ctx, "persona": persona})
        question = principle.pointwise or c.pointwise
        assert question in render("pointwise", **{**ctx, "question": question})


@pytest.mark.parametrize("template", sorted(EXPECTED))
def test_every_shipped_template_matches_its_golden_file(template):
    """Golden files: regenerate with CAI_UPDATE_GOLDEN=1 after an intended change."""
    import os

    text = render(template, **example_context(SMALL))
    golden = GOLDEN / f"{template}.txt"
    if os.environ.get("CAI_UPDATE_GOLDEN"):
        golden.write_text(text + "\n")
    assert text + "\n" == golden.read_text()


def test_every_golden_render_belongs_to_a_shipped_template():
    renders = {p.stem for p in GOLDEN.glob("*.txt")}
    assert renders == EXPECTED


def test_user_folder_overrides_one_template_by_name(tmp_path):
    (tmp_path / "critique.j2").write_text("CUSTOM: {{ principle.id }}")
    ctx = example_context(SMALL)
    assert render("critique", tmp_path, **ctx) == "CUSTOM: p"
    assert render("revision", tmp_path, **ctx) == render("revision", **ctx)  # others unchanged


def test_strict_undefined_and_unknown_template(tmp_path):
    (tmp_path / "critique.j2").write_text("{{ principle.no_such_field }}")
    with pytest.raises(CaiError, match="critique.j2"):
        render("critique", tmp_path, **example_context(SMALL))
    with pytest.raises(CaiError, match="known templates"):
        render("no-such-template")


def test_sandbox_blocks_python_internals(tmp_path):
    (tmp_path / "critique.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(CaiError, match="Security"):
        render("critique", tmp_path, **example_context(SMALL))


def test_cli_render_and_list(cai, tmp_path):
    res = cai("prompts", "render", "compare", "--constitution", "harmless")
    assert res.code == 0 and "(A)" in res.out
    (tmp_path / "refusal.j2").write_text("mine")
    res = cai("prompts", "list", "--prompts-dir", tmp_path)
    assert "refusal (override)" in res.out and "compare\n" in res.out
