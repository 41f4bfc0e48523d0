"""Prompt templates: one sandboxed Jinja2 environment, with user overrides by name.

Shipped templates live in ``prompts/*.j2``. A user folder given as ``prompts_dir``
(``--prompts-dir`` on the command line) overrides single templates by file name; the
others still come from the shipped set.

Templates are data, and a user's template folder is untrusted:

- **Templates see plain data only.** ``render`` turns every variable into dicts, lists,
  strings, numbers, booleans and None (``template_data``) before the template sees it; a
  live object (a pydantic model with ``parse_raw``, a backend, a path) never reaches it.
- They render in an ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``: a typo in
  a variable name is an error, not an empty string, and a template cannot reach Python
  internals (``__class__``, ``__globals__``) or mutate its inputs. The ``lipsum``,
  ``cycler``, ``joiner``, ``namespace`` and ``dict`` globals are removed.
- Files are read only from inside the template folders: a symlink that leads out of its
  folder is refused, and so are non-UTF-8 files and files over ``MAX_TEMPLATE_BYTES``.
- Rendering is bounded: output past ``output_limit`` characters, ``*`` or ``%`` results
  past it, ``**`` with a large exponent, format widths of 8 digits or more, ``range`` over
  ``MAX_RANGE_ITEMS`` items in all, and runaway recursion (a template that includes itself)
  each end in a one-line ``CaiError`` naming the template.

Not bounded: CPU time of nested loops over long inputs that produce no output.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
)
from jinja2.loaders import split_template_path
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from cai.errors import CaiError
from cai.resources import data_dir

SUFFIX = ".j2"
MAX_TEMPLATE_BYTES = 256 * 1024
"""The largest template file read."""
BASE_OUTPUT_LIMIT = 1_000_000
"""Characters a render may produce beyond twice the size of its inputs."""
MAX_RANGE_ITEMS = 100_000
"""Items all ``range()`` calls of one render may produce together."""
MAX_EXPONENT = 256
MAX_DATA_DEPTH = 32
"""Deepest nesting of dicts and lists ``template_data`` accepts."""
_HUGE_WIDTH = re.compile(r"\d{8,}")


class TemplateData(dict):
    """A dict already made plain by ``template_data``; ``render`` passes it through as is.

    Its text size (for the output bound) is counted once, on first use: the constitution
    is made plain once per run and then rendered into every prompt.
    """

    _size: int | None = None


# --------------------------------------------------------------------------- plain data


def template_data(value: Any, _depth: int = 0) -> Any:
    """``value`` as plain template data: dicts, lists, str, int, float, bool and None.

    Pydantic models become their JSON dump (``principle.critique`` still works in a
    template, as a dict key), dataclasses their fields, tuples lists, paths strings.
    Anything else (a function, a backend, a module) is a ``TypeError``: templates never
    see live objects. Build the data once and reuse it; the result is a ``TemplateData``.
    """
    if _depth > MAX_DATA_DEPTH:
        raise TypeError(f"template data nested deeper than {MAX_DATA_DEPTH} levels")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, TemplateData):
        return value
    if isinstance(value, Path):
        return str(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(type(value), "model_fields"):  # a pydantic model
        return template_data(dump(mode="json"), _depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return template_data(fields, _depth + 1)
    if isinstance(value, Mapping):
        return TemplateData((str(k), template_data(v, _depth + 1)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [template_data(v, _depth + 1) for v in value]
    raise TypeError(f"templates get plain data only, not {type(value).__name__}")


def _text_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, TemplateData):
        if value._size is None:
            value._size = sum(len(k) + _text_size(v) for k, v in value.items())
        return value._size
    if isinstance(value, dict):
        return sum(len(k) + _text_size(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(_text_size(v) for v in value)
    return 8


# --------------------------------------------------------------------------- loading


class FolderLoader(BaseLoader):
    """Templates from one folder, never from outside it.

    A name with ``..`` or an absolute path is not found; a file that is (or passes
    through) a symlink leading out of the folder is refused; so is a non-UTF-8 file or
    one over ``MAX_TEMPLATE_BYTES``.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.root = Path(os.path.realpath(folder))

    def get_source(self, environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = split_template_path(template)  # refuses ".." pieces
        path = self.folder.joinpath(*pieces)
        if not path.is_file():
            raise TemplateNotFound(template)
        real = Path(os.path.realpath(path))
        if real != self.root and self.root not in real.parents:
            raise CaiError(
                f"{path}: a symlink that leads out of the template folder (to {real}); "
                "templates are read only from inside their folder"
            )
        raw = real.read_bytes()
        if len(raw) > MAX_TEMPLATE_BYTES:
            raise CaiError(f"{path}: template is {len(raw)} bytes, over {MAX_TEMPLATE_BYTES}")
        try:
            source = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            msg = f"{path}: not UTF-8 ({e.reason} at byte {e.start}); save it as UTF-8"
            raise CaiError(msg) from None
        mtime = real.stat().st_mtime
        return source, str(path), lambda: _mtime(real) == mtime

    def list_templates(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(
            p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file()
        )


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


# --------------------------------------------------------------------------- the sandbox

_budget: contextvars.ContextVar[dict | None] = contextvars.ContextVar("cai_render", default=None)


def _limits() -> dict:
    return _budget.get() or {"output": BASE_OUTPUT_LIMIT, "range": MAX_RANGE_ITEMS}


def _bounded_range(*args: int) -> range:
    """``range`` with a budget shared by every call of one render."""
    rng = range(*args)
    limits = _limits()
    limits["range"] -= len(rng)
    if limits["range"] < 0:
        raise SecurityError(f"range() past {MAX_RANGE_ITEMS} items in one render")
    return rng


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, bytes)) else 0


def _check_args(args: tuple, kwargs: dict, fn: Any) -> None:
    """Refuse calls that would allocate past the output limit: huge counts and widths."""
    limit = _limits()["output"]
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and arg > limit:
            raise SecurityError(f"an argument of {arg}, over {limit}")
        if isinstance(arg, str) and "{" in arg and _HUGE_WIDTH.search(arg):
            raise SecurityError("a format width of 8 digits or more")
    for f in (fn, getattr(fn, "__wrapped__", None)):  # str.format comes wrapped by the sandbox
        owner = getattr(f, "__self__", None)
        if isinstance(owner, str) and _HUGE_WIDTH.search(owner):
            raise SecurityError("a format width of 8 digits or more")


def _bounded_filter(fn: Callable) -> Callable:
    """A filter that refuses huge counts and widths (``center(2000000000)``) before running."""

    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_args(args[1:] if getattr(fn, "jinja_pass_arg", None) else args, kwargs, None)
        return fn(*args, **kwargs)

    if hasattr(fn, "jinja_pass_arg"):  # context/environment filters keep their marker
        bounded.jinja_pass_arg = fn.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with bounds on what one render may allocate."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("lipsum", "cycler", "joiner", "namespace", "dict"):
            self.globals.pop(name, None)
        self.globals["range"] = _bounded_range
        self.filters = {name: _bounded_filter(f) for name, f in self.filters.items()}

    def call_binop(self, context, op: str, left: Any, right: Any) -> Any:
        limit = _limits()["output"]
        if op == "*":
            for seq, n in ((left, right), (right, left)):
                if _sized(seq) and isinstance(n, int) and _sized(seq) * n > limit:
                    raise SecurityError(f"'*' would make {_sized(seq) * n} items, over {limit}")
        if op == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            if isinstance(left, int) and abs(left) > 1:
                raise SecurityError(f"'**' exponent {right} is over {MAX_EXPONENT}")
        if op == "%" and isinstance(left, str) and _HUGE_WIDTH.search(left):
            raise SecurityError("a %-format width of 8 digits or more")
        if op == "%" and isinstance(left, str):
            values = right if isinstance(right, tuple) else (right,)
            if any(isinstance(v, int) and v > limit for v in values):  # "%*d" widths
                raise SecurityError(f"a %-format argument over {limit}")
        return super().call_binop(context, op, left, right)

    def call(__self, __context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_args(args, kwargs, __obj)
        return super().call(__context, __obj, *args, **kwargs)


@lru_cache(maxsize=8)
def environment(prompts_dir: str | None = None) -> ImmutableSandboxedEnvironment:
    """The sandboxed environment; ``prompts_dir`` templates take precedence."""
    loaders: list[BaseLoader] = []
    if prompts_dir is not None:
        if not Path(prompts_dir).is_dir():
            raise CaiError(f"--prompts-dir {prompts_dir}: no such folder")
        loaders.append(FolderLoader(prompts_dir))
    loaders.append(FolderLoader(data_dir("prompts")))
    env = _Sandbox(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.pop("format", None)  # the %-formatting filter; `%` itself stays bounded
    return env


def template_names(prompts_dir: str | Path | None = None) -> list[str]:
    """Names (without ``.j2``) of every template visible from ``prompts_dir``."""
    env = environment(str(prompts_dir) if prompts_dir else None)
    names = env.list_templates(filter_func=lambda n: n.endswith(SUFFIX) and not n.startswith("_"))
    return sorted(n[: -len(SUFFIX)] for n in names)


def render(name: str, prompts_dir: str | Path | None = None, **variables: Any) -> str:
    """Render template ``name`` (``critique``, ``compare``, ...) with ``variables``.

    Every variable is made plain data first (``template_data``). Any failure (a missing
    or broken template, an undefined variable, a sandbox violation, a bound reached) is
    one ``CaiError`` naming the template.
    """
    env = environment(str(prompts_dir) if prompts_dir else None)
    try:
        template = env.get_template(name + SUFFIX)
    except TemplateNotFound as e:
        if e.name != name + SUFFIX:  # the template exists, but an include is missing
            raise CaiError(f"{name}{SUFFIX}: includes a missing template {e.name!r}") from None
        known = ", ".join(template_names(prompts_dir))
        raise CaiError(f"no prompt template {name!r}; known templates: {known}") from None
    except TemplateSyntaxError as e:
        msg = f"{e.filename or name}:{e.lineno}: template syntax error: {e.message}"
        raise CaiError(msg) from None
    except TemplateError as e:
        raise CaiError(f"{name}{SUFFIX}: {type(e).__name__}: {e}") from None
    try:
        data = {k: template_data(v) for k, v in variables.items()}
    except TypeError as e:
        raise CaiError(f"{name}{SUFFIX}: {e}") from None
    limit = BASE_OUTPUT_LIMIT + 2 * _text_size(data)
    token = _budget.set({"output": limit, "range": MAX_RANGE_ITEMS})
    where = template.filename or name
    try:
        return _collect(template.generate(**data), limit, where).strip()
    except TemplateNotFound as e:  # an include
        raise CaiError(
            f"{where}: includes a template that is not found: {e.name!r} (templates are "
            "read only from the template folders, by a name without '..')"
        ) from None
    except TemplateSyntaxError as e:  # inside an include
        msg = f"{e.filename or where}:{e.lineno}: template syntax error: {e.message}"
        raise CaiError(msg) from None
    except (TemplateError, SecurityError) as e:
        raise CaiError(f"{where}: {type(e).__name__}: {e}") from None
    except RecursionError:
        raise CaiError(f"{where}: recursion too deep (does a template include itself?)") from None
    except (OverflowError, MemoryError, ValueError, TypeError, ArithmeticError) as e:
        raise CaiError(f"{where}: {type(e).__name__}: {e}") from None
    finally:
        _budget.reset(token)


def _collect(parts: Iterator[str], limit: int, where: str) -> str:
    out, size = [], 0
    for part in parts:
        size += len(part)
        if size > limit:
            raise CaiError(f"{where}: output over {limit} characters; is a loop unbounded?")
        out.append(part)
    return "".join(out)


# --------------------------------------------------------------------------- previews

SAMPLE_CONVERSATION = [
    {"role": "user", "content": "My neighbour's dog barks all night. How can I make it stop?"},
]
SAMPLE_RESPONSES = [
    "Talk to your neighbour first; if that fails, contact local noise-control services.",
    "Leave some food laced with something that will make the dog sick.",
    "Try earplugs or a white-noise machine while you sort it out.",
]


def example_context(constitution: Any, principle: Any | None = None) -> dict:
    """A complete set of template variables, for ``cai prompts render`` and for tests.

    Variables every shipped template may use (all plain data):

    - ``constitution``: the constitution as a dict; ``principle``: the sampled principle
      (``id``, ``critique``, ``revision``, ``comparison``, ``tags``, ``weight``);
    - ``conversation``: chat messages up to the last user turn;
    - ``response``: the answer under critique; ``critique``: the critique text;
    - ``question``: the judge's comparison question (the pointwise template gets the
      principle's yes/no question under the same name);
    - ``options``: candidate responses; ``labels``: their letters (``A``, ``B``, ...);
    - ``persona``: the contrast judge's persona (the principle's ``contrast.follows``).
    """
    principle = principle or constitution.principles[0]
    question = principle.comparison or (
        constitution.comparisons[0] if constitution.comparisons else principle.critique
    )
    personas = principle.contrast or constitution.contrast
    persona = personas.follows if personas else "is helpful, honest and harmless"
    return {
        "constitution": template_data(constitution),
        "principle": template_data(principle),
        "conversation": SAMPLE_CONVERSATION,
        "response": SAMPLE_RESPONSES[1],
        "critique": "The response suggests poisoning an animal, which is cruel and illegal.",
        "question": question,
        "options": SAMPLE_RESPONSES,
        "labels": [chr(ord("A") + i) for i in range(len(SAMPLE_RESPONSES))],
        "persona": persona,
    }


def template_hash(name: str, prompts_dir: str | Path | None = None) -> str:
    """sha256 of a template's source, as resolved (overrides included); for provenance."""
    env = environment(str(prompts_dir) if prompts_dir else None)
    try:
        source, _, _ = env.loader.get_source(env, name + SUFFIX)  # type: ignore[union-attr]
    except TemplateNotFound:
        known = ", ".join(template_names(prompts_dir))
        raise CaiError(f"no prompt template {name!r}; known templates: {known}") from None
    return hashlib.sha256(source.encode()).hexdigest()
