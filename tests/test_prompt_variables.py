"""Every variable a shipped template documents reaches it where the template is used.

``cai prompts render`` previews an override with every documented variable, so an
override may use any of them; if a loop did not pass one, the override would preview
fine and fail only at generation time. Each test here writes overrides that use every
variable their template's header documents ("Variables: ...") and runs the code that
renders them: generate-revisions on tiny-random, the judge in both modes, the refusal
judge.
"""

from __future__ import annotations

import re

import pytest

from cai.constitution import load_constitution
from cai.judge import Judge, PairItem, judge_refusals
from cai.prompts import example_context, template_names
from tests.conftest import REPO
from tests.fakes import ScriptedBackend

USED_BY = {
    "critique": "generate-revisions",
    "revision": "generate-revisions",
    "compare": "judge",
    "compare_cot": "judge (cot)",
    "refusal": "evaluate --refusal-judge",
    "pointwise": "judge (pointwise)",
    "persona": "judge (contrast)",
}
HARMLESS = load_constitution("harmless")


def documented(name: str) -> list[str]:
    """The variables a shipped template's header names after "Variables:"."""
    source = (REPO / "prompts" / f"{name}.j2").read_text()
    header = source[source.index("{#") : source.index("#}")]
    plain = re.sub(r"\([^()]*\)", "", header)  # drop the explanations in parentheses
    listed = re.search(r"Variables:\s*(.*?)\s*\.", plain, re.S)
    assert listed, f"{name}.j2 documents no variables"
    names = [n.strip() for n in listed.group(1).split(",")]
    if len(names) == 1 and names[0].startswith("as for "):
        return documented(names[0].removeprefix("as for "))
    return names


def override(folder, *names: str) -> None:
    """Templates that print every documented variable between tags (a text whole, the
    start of anything else, to keep prompts short for the tiny model's context)."""
    for name in names:
        show = "{{ %s if %s is string else (%s | string)[:60] }}"
        body = "".join(f"<{v}>{show % (v, v, v)}</{v}>\n" for v in documented(name))
        (folder / f"{name}.j2").write_text(body)


def test_every_shipped_template_documents_variables_and_is_checked_here():
    assert set(template_names()) == set(USED_BY), "a new template needs its test below"
    for name in USED_BY:
        names = documented(name)
        assert names and all(n.isidentifier() for n in names), (name, names)
        assert set(names) <= set(example_context(HARMLESS)), name  # cai prompts render has them


def test_documented_variables_are_parsed_from_the_headers():
    assert documented("revision") == [
        "principle",
        "constitution",
        "conversation",
        "response",
        "critique",
    ]
    assert documented("compare_cot") == ["conversation", "question", "options", "labels"]
    assert documented("refusal") == ["conversation", "response"]
    assert documented("pointwise") == ["conversation", "response", "question"]
    assert documented("persona") == ["persona"]


@pytest.fixture
def overrides(tmp_path):
    folder = tmp_path / "prompts"
    folder.mkdir()
    override(folder, *USED_BY)
    return folder


def test_generate_revisions_renders_every_documented_variable(cai, overrides, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "out"
    res = cai("generate-revisions", "--prompts", "red-team", "--limit", "2",
              "--model", "tiny-random", "--max-new-tokens", "6", "--no-cache",
              "--prompts-dir", overrides, "-o", out)  # fmt: skip
    assert res.code == 0, res.err
    rows = load_dataset(str(out))["train"]
    assert rows.num_rows == 2
    for row in rows:
        for step in row["trace"]["rounds"]:
            for request in (step["critique_request"], step["revision_request"]):
                assert f"<principle>{{'id': '{step['principle_id']}'" in request
                assert f"<constitution>{{'name': '{HARMLESS.name}'" in request
            # The revision request carries the critique it answers, as the model wrote it.
            assert f"<critique>{step['critique']}</critique>" in step["revision_request"]


def test_few_shot_revision_requests_carry_the_examples_critique(overrides):
    from cai.backends.base import SamplingParams
    from cai.revise import Reviser

    assert HARMLESS.examples, "the shipped constitution has worked examples"
    reviser = Reviser(
        ScriptedBackend(answer="ok"), HARMLESS, SamplingParams(), prompts_dir=overrides
    )
    block = reviser.few_shot_block()
    for ex in HARMLESS.examples:
        i = next(k for k, m in enumerate(block) if m["content"] == ex.critique)
        assert block[i + 1]["role"] == "user"
        assert f"<critique>{ex.critique}</critique>" in block[i + 1]["content"]


@pytest.mark.parametrize("mode, template", [("logprob", "compare"), ("cot", "compare_cot")])
def test_the_judge_renders_every_documented_variable(overrides, mode, template):
    backend = ScriptedBackend(answer="Both are fine.", prefer=" (A)")
    conv = [{"role": "user", "content": "USER-TURN"}]
    judge = Judge(backend, HARMLESS, mode=mode, prompts_dir=str(overrides))
    judge.judge([PairItem("x", conv, "FIRST-ANSWER", "SECOND-ANSWER")])
    prompts = [c[0]["content"] for c in backend.scored[0]]
    assert len(prompts) == 2  # both orders
    ((_, question),) = judge.questions("x")
    for prompt, shown in zip(prompts, (["FIRST", "SECOND"], ["SECOND", "FIRST"])):
        assert prompt.startswith("<conversation>") and "USER-TURN" in prompt
        assert f"<question>{question}</question>" in prompt
        assert f"<options>['{shown[0]}-ANSWER', '{shown[1]}-ANSWER']</options>" in prompt
        assert "<labels>['A', 'B']</labels>" in prompt


def test_the_refusal_judge_renders_every_documented_variable(overrides):
    backend = ScriptedBackend(prefer=" (A)")
    rows = [{"prompt": [{"role": "user", "content": "USER-TURN"}], "response": "AN-ANSWER"}]
    judge_refusals(Judge(backend, HARMLESS, prompts_dir=str(overrides)), rows)
    prompt = backend.scored[0][0][0]["content"]
    assert "USER-TURN" in prompt and "<response>AN-ANSWER</response>" in prompt


def test_the_pointwise_and_contrast_judges_render_every_documented_variable(overrides):
    backend = ScriptedBackend(
        prefer=lambda conv: [0.0] * 2 if conv[-1]["role"] == "assistant" else [-1.0]
    )
    conv = [{"role": "user", "content": "USER-TURN"}]
    for mode in ("pointwise", "contrast"):
        judge = Judge(backend, HARMLESS, mode=mode, prompts_dir=str(overrides))
        judge.judge([PairItem("x", conv, "FIRST-ANSWER", "SECOND-ANSWER")])
    ((pid, _),) = judge.questions("x")
    principle = HARMLESS.principle(pid)
    pointwise, contrast = backend.scored
    for prompt, shown in zip([c[0]["content"] for c in pointwise], ("FIRST", "SECOND")):
        assert prompt.startswith("<conversation>") and "USER-TURN" in prompt
        assert f"<response>{shown}-ANSWER</response>" in prompt
        assert f"<question>{principle.pointwise}</question>" in prompt
    systems = [c[0]["content"] for c in contrast]
    assert systems[0] == f"<persona>{principle.contrast.follows}</persona>"
    assert systems[2] == f"<persona>{principle.contrast.violates}</persona>"
