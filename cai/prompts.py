"""Prompt templates: one sandboxed Jinja2 environment, with user overrides by name.

Shipped templates live in ``prompts/*.j2``. A user folder given as ``prompts_dir``
(``--prompts-dir`` on the command line) overrides single templates by file name; the
others still come from the shipped set. Templates are data: they render in an
``ImmutableSandboxedEnvironment`` with ``StrictUndefined``, so a typo in a variable name
is an error, not an empty string, and a template cannot reach Python internals.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from cai.constitution import Constitution, Principle
from cai.errors import CaiError
from cai.resources import data_dir

SUFFIX = ".j2"


@lru_cache(maxsize=8)
def environment(prompts_dir: str | None = None) -> ImmutableSandboxedEnvironment:
    """The sandboxed environment; ``prompts_dir`` templates take precedence."""
    loaders = []
    if prompts_dir is not None:
        if not Path(prompts_dir).is_dir():
            raise CaiError(f"--prompts-dir {prompts_dir}: no such folder")
        loaders.append(FileSystemLoader(prompts_dir))
    loaders.append(FileSystemLoader(str(data_dir("prompts"))))
    return ImmutableSandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def template_names(prompts_dir: str | Path | None = None) -> list[str]:
    """Names (without ``.j2``) of every template visible from ``prompts_dir``."""
    env = environment(str(prompts_dir) if prompts_dir else None)
    names = env.list_templates(filter_func=lambda n: n.endswith(SUFFIX) and not n.startswith("_"))
    return sorted(n[: -len(SUFFIX)] for n in names)


def render(name: str, prompts_dir: str | Path | None = None, **variables: Any) -> str:
    """Render template ``name`` (``critique``, ``compare``, ...) with ``variables``."""
    env = environment(str(prompts_dir) if prompts_dir else None)
    try:
        template = env.get_template(name + SUFFIX)
    except TemplateError:
        known = ", ".join(template_names(prompts_dir))
        raise CaiError(f"no prompt template {name!r}; known templates: {known}") from None
    try:
        return template.render(**variables).strip()
    except TemplateError as e:
        where = template.filename or name
        raise CaiError(f"{where}: {type(e).__name__}: {e}") from None


SAMPLE_CONVERSATION = [
    {"role": "user", "content": "My neighbour's dog barks all night. How can I make it stop?"},
]
SAMPLE_RESPONSES = [
    "Talk to your neighbour first; if that fails, contact local noise-control services.",
    "Leave some food laced with something that will make the dog sick.",
    "Try earplugs or a white-noise machine while you sort it out.",
]


def example_context(constitution: Constitution, principle: Principle | None = None) -> dict:
    """A complete set of template variables, for ``cai prompts render`` and for tests.

    Variables every shipped template may use:

    - ``constitution``: the ``Constitution``; ``principle``: the sampled ``Principle``;
    - ``conversation``: chat messages up to the last user turn;
    - ``response``: the answer under critique; ``critique``: the critique text;
    - ``question``: the judge's comparison question;
    - ``options``: candidate responses; ``labels``: their letters (``A``, ``B``, ...).
    """
    principle = principle or constitution.principles[0]
    question = principle.comparison or (
        constitution.comparisons[0] if constitution.comparisons else principle.critique
    )
    return {
        "constitution": constitution,
        "principle": principle,
        "conversation": SAMPLE_CONVERSATION,
        "response": SAMPLE_RESPONSES[1],
        "critique": "The response suggests poisoning an animal, which is cruel and illegal.",
        "question": question,
        "options": SAMPLE_RESPONSES,
        "labels": [chr(ord("A") + i) for i in range(len(SAMPLE_RESPONSES))],
    }


def template_hash(name: str, prompts_dir: str | Path | None = None) -> str:
    """sha256 of a template's source, as resolved (overrides included); for provenance."""
    import hashlib

    env = environment(str(prompts_dir) if prompts_dir else None)
    source, _, _ = env.loader.get_source(env, name + SUFFIX)  # type: ignore[union-attr]
    return hashlib.sha256(source.encode()).hexdigest()
