"""Hostile templates: payloads in a --prompts-dir run nothing and read nothing outside it.

Each payload is one a probe tried (../shared/hostile-cases.md, "Constitutions, imports,
templates"). Every test renders through the real ``render`` (and, for the worst payload,
through the real commands) and checks that nothing ran, nothing leaked and the error is
one line naming the template.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cai.constitution import load_constitution
from cai.errors import CaiError
from cai.prompts import example_context, render, template_data, template_names

PARSE_RAW = (
    'principle.parse_raw(..., content_type="application/pickle", allow_pickle=True) in a template'
)
PICKLE = (
    "cos\\nsystem\\n(S'touch {marker}'\\ntR0(dS'id'\\nS'x'\\nsS'critique'\\nS'c'\\nsS'revision'"
    "\\nS'r'\\ns."
)


def _payload(obj: str, marker: Path) -> str:
    """The probe's payload: pydantic's deprecated parse_raw unpickling a shell command."""
    return (
        f'{{%- set _ = {obj}.parse_raw("{PICKLE.format(marker=marker)}", '
        'content_type="application/pickle", allow_pickle=True) -%}\n'
    )


def _dir(tmp_path: Path, **templates: str) -> Path:
    d = tmp_path / "prompts"
    d.mkdir(exist_ok=True)
    for name, text in templates.items():
        (d / f"{name}.j2").write_text(text)
    return d


def _ctx() -> dict:
    c = load_constitution("harmless")
    return example_context(c)


def _render_error(folder: Path, name: str = "critique") -> str:
    with pytest.raises(CaiError) as e:
        render(name, folder, **_ctx())
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.mark.hostile(PARSE_RAW)
@pytest.mark.parametrize("obj", ["principle", "constitution"])
def test_parse_raw_pickle_runs_nothing(tmp_path, obj):
    marker = tmp_path / "pwned.txt"
    folder = _dir(tmp_path, critique=_payload(obj, marker) + "{{ principle.critique }}")
    message = _render_error(folder)
    assert "parse_raw" in message and "critique.j2" in message
    assert not marker.exists()


def test_templates_get_plain_data_only():
    c = load_constitution("harmless")
    data = template_data({"constitution": c, "principle": c.principles[0], "path": Path("x")})

    def plain(v):
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or isinstance(v, (str, int, float, bool))

    assert plain(data)
    assert data["principle"]["critique"] == c.principles[0].critique
    with pytest.raises(TypeError, match="plain data"):
        template_data({"f": print})
    with pytest.raises(CaiError, match="plain data"):
        render("critique", principle={"critique": "x"}, constitution=object())


@pytest.mark.hostile("''.__class__.__mro__")
@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ principle.__class__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ cycler.__init__.__globals__.os.system('touch MARK') }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ lipsum.__globals__.os.system('touch MARK') }}",
        "{{ dict.mro() }}",
        "{{ '{0.__class__.__mro__}'.format(principle) }}",
        "{{ range.__self__ }}",
        "{{ principle.update({'critique': 'x'}) }}",
    ],
)
def test_sandbox_escapes_fail_cleanly(tmp_path, payload, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = _dir(tmp_path, critique=payload)
    message = _render_error(folder)
    assert "critique.j2" in message
    assert not (tmp_path / "MARK").exists()


@pytest.mark.hostile("a template with {% include '/etc/passwd' %} or ../")
@pytest.mark.parametrize("target", ["/etc/passwd", "../secret.txt", "../../etc/passwd"])
def test_include_outside_the_folder_is_not_found(tmp_path, target):
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    folder = _dir(tmp_path, critique=f"{{% include '{target}' %}}")
    message = _render_error(folder)
    assert "missing template" in message or "not found" in message.lower()
    assert "TOP SECRET" not in message and "root:" not in message


@pytest.mark.hostile("a symlink in the prompts folder pointing at /etc/passwd")
def test_symlink_out_of_the_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    folder = _dir(tmp_path, revision="{% include 'leak.j2' %}")
    (folder / "critique.j2").symlink_to(secret)
    (folder / "leak.j2").symlink_to(secret)
    for name in ("critique", "revision"):
        message = _render_error(folder, name)
        assert "symlink" in message and "TOP SECRET" not in message


def test_symlink_inside_the_folder_is_allowed(tmp_path):
    folder = _dir(tmp_path, base="Base: {{ principle.id }}")
    (folder / "critique.j2").symlink_to(folder / "base.j2")
    assert render("critique", folder, **_ctx()).startswith("Base: ")


@pytest.mark.hostile("a template that includes itself; range(10**8)")
def test_self_include_is_a_clear_error(tmp_path):
    folder = _dir(tmp_path, critique="x{% include 'critique.j2' %}")
    assert "recursion" in _render_error(folder)


@pytest.mark.hostile("a template that includes itself; range(10**8)")
@pytest.mark.parametrize(
    "payload",
    [
        "{% for i in range(10**8) %}{% endfor %}",
        "{% for i in range(90000) %}{% for j in range(90000) %}{% endfor %}{% endfor %}",
        "{{ 10 ** 100000000 }}",
    ],
)
def test_range_and_power_are_bounded(tmp_path, payload):
    folder = _dir(tmp_path, critique=payload)
    message = _render_error(folder)
    assert "critique.j2" in message


@pytest.mark.hostile("{{ 'A' * 2000000000 }}")
@pytest.mark.parametrize(
    "payload",
    [
        "{{ 'A' * 2000000000 }}",
        "{{ ['A'] * 2000000000 }}",
        "{{ 'A' | center(2000000000) }}",
        "{{ '%2000000000d' % 1 }}",
        "{{ '%*d' % (2000000000, 1) }}",
        "{{ '{:>2000000000}'.format(1) }}",
        "{% for i in range(100000) %}{{ 'A' * 100 }}{% endfor %}",
    ],
)
def test_output_size_is_bounded(tmp_path, payload):
    folder = _dir(tmp_path, critique=payload)
    message = _render_error(folder)
    assert "critique.j2" in message


def test_long_inputs_still_render():
    """The bounds grow with the inputs: a 200k-character conversation renders whole."""
    ctx = _ctx()
    ctx["conversation"] = [{"role": "user", "content": "x" * 200_000}]
    assert len(render("compare", **ctx)) > 200_000


@pytest.mark.hostile("a template syntax error")
def test_syntax_error_names_the_file_and_line(tmp_path):
    folder = _dir(tmp_path, critique="line one\n{{ principle.critique \n")
    message = _render_error(folder)
    assert "critique.j2:2" in message and "syntax error" in message
    assert "no prompt template" not in message


@pytest.mark.hostile("a non-UTF-8 constitution, template or import file")
def test_non_utf8_template_is_named(tmp_path):
    folder = _dir(tmp_path)
    (folder / "critique.j2").write_bytes(b"caf\xe9 {{ principle.critique }}")
    message = _render_error(folder)
    assert "critique.j2" in message and "UTF-8" in message


def test_listing_still_works_with_a_hostile_folder(tmp_path):
    folder = _dir(tmp_path, critique="{{ principle.critique }}")
    (folder / "leak.j2").symlink_to("/etc/passwd")
    assert "critique" in template_names(folder)


# ----------------------------------------------------------------- through the commands


@pytest.mark.hostile(PARSE_RAW)
def test_payload_through_prompts_render(cai, tmp_path):
    marker = tmp_path / "pwned.txt"
    folder = _dir(tmp_path, critique=_payload("principle", marker) + "{{ principle.critique }}")
    res = cai("prompts", "render", "critique", "--prompts-dir", folder)
    assert res.code == 2 and "parse_raw" in res.err and "Traceback" not in res.err
    assert not marker.exists()


@pytest.mark.hostile(PARSE_RAW)
def test_payload_through_generate_revisions(cai, tmp_path):
    marker = tmp_path / "pwned.txt"
    folder = _dir(tmp_path, critique=_payload("principle", marker) + "{{ principle.critique }}")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "1", "prompt": "How do I pick a lock?"}) + "\n")
    res = cai("generate-revisions", "--model", "tiny-random", "--max-new-tokens", "4",
              "--no-few-shot", "--prompts", prompts, "-o", tmp_path / "out",
              "--prompts-dir", folder, "--no-cache")  # fmt: skip
    assert res.code == 2 and "parse_raw" in res.err
    assert not marker.exists()


@pytest.mark.hostile(PARSE_RAW)
def test_payload_through_judge(cai, tmp_path):
    marker = tmp_path / "pwned.txt"
    folder = _dir(tmp_path, compare=_payload("constitution", marker) + "{{ question }}")
    prompts = tmp_path / "p.jsonl"
    row = {"id": "1", "prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}
    prompts.write_text(json.dumps(row) + "\n")
    res = cai("judge", "--prompts", prompts, "--judge-model", "tiny-random", "-o",
              tmp_path / "out", "--prompts-dir", folder)  # fmt: skip
    assert res.code == 2 and "parse_raw" in res.err
    assert not marker.exists()
    assert os.listdir(tmp_path).count("pwned.txt") == 0
