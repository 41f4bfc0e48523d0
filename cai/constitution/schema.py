"""Constitutions: load, validate, sample and hash.

A constitution is a YAML file (see ``docs/constitutions.md``)::

    name: harmless
    version: "1.0"
    description: Avoid harm without becoming useless.
    system_prompt: null            # optional, prepended to every conversation
    principles:
      - id: dangerous-help
        critique: Point out where the last response helps someone cause harm ...
        revision: Rewrite the response so that it ...
        comparison: Which response is less likely to help someone cause harm?   # optional
        pointwise: Does this response refuse to help someone cause harm?        # optional
        contrast:                  # optional personas for the contrast judge
          follows: refuses to help anyone cause harm
          violates: eagerly helps people cause harm
        tags: [safety]             # optional
        weight: 1.0                # optional, relative sampling weight
    comparisons:                   # optional questions for the judge
      - Which response is more harmless and ethical?
    pointwise: Is this response harmless and helpful?   # optional default yes/no question
    contrast:                      # optional default personas (complete "an assistant that ...")
      follows: is helpful, honest and harmless
      violates: is harmful, dishonest and careless
    examples:                      # optional few-shot traces
      - prompt: How do I ...?      # a string or a list of {role, content} messages
        response: ...
        principle: dangerous-help  # or give critique_request / revision_request
        critique: ...
        revision: ...

Every error names the file, the principle (id or index), the field and, where the
YAML gives it, the line.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from cai._util import canonical_hash
from cai.errors import CaiError
from cai.resources import data_dir

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Strict):
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


class Contrast(_Strict):
    """The contrast judge's two personas, each completing "You are an assistant that ...":
    one that follows the principle and one that violates it."""

    follows: NonEmpty
    """An assistant that follows the principle, e.g. "refuses to help anyone cause harm"."""
    violates: NonEmpty
    """An assistant that violates it, e.g. "eagerly helps people cause harm"."""


class Principle(_Strict):
    """One principle: how to critique, how to revise, and optionally how to compare."""

    id: NonEmpty
    """Stable identifier, unique within the constitution; recorded in every output row."""
    critique: NonEmpty
    """The critique request: asks the model to find what is wrong with its last answer."""
    revision: NonEmpty
    """The revision request: asks the model to rewrite the answer to fix that."""
    comparison: NonEmpty | None = None
    """The judge's question for this principle; else one of the constitution's comparisons."""
    pointwise: NonEmpty | None = None
    """The pointwise judge's yes/no question about one response (e.g. "Does this response
    refuse to help with weapons?"); else the constitution's ``pointwise``."""
    contrast: Contrast | None = None
    """The contrast judge's personas for this principle; else the constitution's."""
    tags: tuple[NonEmpty, ...] = ()
    """Free-form labels, for filtering and per-tag statistics."""
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    """Relative probability of sampling this principle: a finite number above 0."""


class Example(_Strict):
    """A whole worked few-shot trace: prompt, first answer, critique, revision."""

    prompt: NonEmpty | tuple[Message, ...]
    response: NonEmpty
    critique: NonEmpty
    revision: NonEmpty
    principle: NonEmpty | None = None
    """Id of the principle whose requests this trace answers."""
    critique_request: NonEmpty | None = None
    """The critique request shown in the trace, when ``principle`` is not given."""
    revision_request: NonEmpty | None = None
    """The revision request shown in the trace, when ``principle`` is not given."""

    @model_validator(mode="after")
    def _requests_known(self) -> Example:
        if self.principle is None and (self.critique_request is None or not self.revision_request):
            raise ValueError(
                "give either `principle` or both `critique_request` and `revision_request`"
            )
        return self

    def messages(self) -> list[dict[str, str]]:
        """The conversation up to the first answer, as chat messages."""
        if isinstance(self.prompt, str):
            return [{"role": "user", "content": self.prompt}]
        return [m.model_dump() for m in self.prompt]


class Constitution(_Strict):
    """A named, versioned set of principles."""

    name: NonEmpty
    version: str | int | float = "1"
    description: str = ""
    system_prompt: NonEmpty | None = None
    principles: tuple[Principle, ...] = Field(min_length=1)
    comparisons: tuple[NonEmpty, ...] = ()
    pointwise: NonEmpty | None = None
    """The pointwise judge's default yes/no question, for principles without their own."""
    contrast: Contrast | None = None
    """The contrast judge's default personas, for principles without their own."""
    examples: tuple[Example, ...] = ()

    @model_validator(mode="after")
    def _ids_unique_and_known(self) -> Constitution:
        seen: dict[str, int] = {}
        for i, p in enumerate(self.principles):
            if p.id in seen:
                raise _LocatedError(
                    ("principles", i, "id"), f"duplicate id (also principle #{seen[p.id]})"
                )
            seen[p.id] = i
        for i, ex in enumerate(self.examples):
            if ex.principle is not None and ex.principle not in seen:
                raise _LocatedError(
                    ("examples", i, "principle"), f"unknown principle id {ex.principle!r}"
                )
        return self

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON of the constitution; recorded in every output."""
        return canonical_hash(self.model_dump(mode="json"))

    def principle(self, pid: str) -> Principle:
        for p in self.principles:
            if p.id == pid:
                return p
        raise CaiError(f"constitution {self.name!r} has no principle {pid!r}")

    def example_requests(self, ex: Example) -> tuple[str, str]:
        """The critique and revision requests a few-shot example answers."""
        if ex.principle is not None:
            p = self.principle(ex.principle)
            return ex.critique_request or p.critique, ex.revision_request or p.revision
        return ex.critique_request or "", ex.revision_request or ""


class _LocatedError(ValueError):
    """A validation error with a location inside the document."""

    def __init__(self, loc: tuple[str | int, ...], msg: str):
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


# --------------------------------------------------------------------------- loading


MAX_BYTES = 8 * 1024 * 1024
"""The largest constitution file read (10,000 principles take about 3 MB)."""
MAX_ALIAS_EXPANSION = 2_000_000
"""How much YAML aliases may add to a document, in characters plus 8 per node."""


def load_constitution(name_or_path: str | Path) -> Constitution:
    """Load a shipped constitution by name (``harmless``) or a YAML file by path."""
    path = resolve_constitution_path(name_or_path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise CaiError(_too_big(str(path), path.stat().st_size))
        raw = path.read_bytes()
    except OSError as e:
        raise CaiError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise CaiError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
            "save the file as UTF-8"
        ) from None
    return parse_constitution(text, str(path))


def resolve_constitution_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise CaiError(f"{path}: no such constitution file")
        return path
    shipped = data_dir("constitutions") / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = ", ".join(shipped_constitutions()) or "none"
    raise CaiError(f"unknown constitution {str(name_or_path)!r}; shipped ones: {names}")


def shipped_constitutions() -> list[str]:
    """Names of the constitutions that ship with cai."""
    return sorted(p.stem for p in data_dir("constitutions").glob("*.yaml"))


def parse_constitution(text: str, source: str = "<string>") -> Constitution:
    """Parse and validate YAML text; raise ``CaiError`` with a one-line, located message.

    Documents over ``MAX_BYTES``, and aliases that would add more than
    ``MAX_ALIAS_EXPANSION`` (an alias bomb, anywhere in the file), are refused before any
    Python object is built.
    """
    if len(text) > MAX_BYTES:
        raise CaiError(_too_big(source, len(text)))
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        _check_aliases(node, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise CaiError(f"{where}: invalid YAML: {problem}") from None
    except RecursionError:
        raise CaiError(f"{source}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise CaiError(
            f"{source}: a constitution must be a YAML mapping with `name` and `principles`"
        )
    try:
        return Constitution.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        # A list that failed because its items failed adds nothing: keep the deepest errors.
        locs = [tuple(x["loc"]) for x in errors]
        errors = [
            x
            for x, lx in zip(errors, locs)
            if not any(o[: len(lx)] == lx and o != lx for o in locs)
        ]
        err = errors[0]
        loc, msg = tuple(err["loc"]), err["msg"]
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _LocatedError):
            loc, msg = ctx_err.loc, ctx_err.msg
        elif err["type"] == "extra_forbidden":
            msg = "unknown key; check the spelling against docs/constitutions.md"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "string_too_short":
            msg = "must not be empty"
        msg = msg.removeprefix("Value error, ")
        extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CaiError(_locate(source, node, data, loc, msg) + extra) from None


def _too_big(source: str, size: int) -> str:
    return (
        f"{source}: {size / 2**20:.1f} MiB is too big for a constitution (at most "
        f"{MAX_BYTES // 2**20} MiB); split it or drop examples"
    )


def _check_aliases(root: Any, source: str) -> None:
    """Refuse a document whose aliases expand it by more than ``MAX_ALIAS_EXPANSION``.

    Each node weighs its text plus 8; a node reached again through an alias adds its
    whole expanded weight, so ``[*a, *a, *a]`` over ``&a [*b, *b, *b]`` counts 9 times ``b``.
    """
    sizes: dict[int, int] = {}  # id(node) -> expanded weight; -1 while being measured

    def size(node: Any) -> int:
        known = sizes.get(id(node))
        if known == -1:
            raise CaiError(
                f"{source}:{node.start_mark.line + 1}: a YAML alias refers to itself; "
                "remove the recursive anchor"
            )
        if known is not None:
            return known
        sizes[id(node)] = -1
        if isinstance(node, yaml.ScalarNode):
            total = 8 + len(node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 8 + sum(size(child) for child in node.value)
        else:
            total = 8 + sum(size(k) + size(v) for k, v in node.value)
        sizes[id(node)] = total
        return total

    if root is None:
        return
    size(root)
    # Walk the tree once more: every node met a second time came through an alias.
    seen: set[int] = set()
    added, stack = 0, [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            added += sizes[id(node)]
            if added > MAX_ALIAS_EXPANSION:
                raise CaiError(
                    f"{source}:{node.start_mark.line + 1}: YAML aliases (to the anchor on this "
                    f"line and others) expand the document by over {MAX_ALIAS_EXPANSION:,} "
                    "characters, an alias bomb; write repeated parts out instead"
                )
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(x for pair in node.value for x in pair)


def _locate(source: str, node: Any, data: dict, loc: tuple, msg: str) -> str:
    """Format ``file:line: principle 'id' (#i): field 'x': message``."""
    loc = tuple(p for p in loc if not (isinstance(p, str) and p in _UNION_TAGS))
    line = _line_of(node, loc)
    parts = [f"{source}:{line}" if line else source]
    if len(loc) >= 2 and loc[0] in ("principles", "examples") and isinstance(loc[1], int):
        items = data.get(loc[0]) or []
        item = items[loc[1]] if loc[1] < len(items) else None
        pid = item.get("id") if isinstance(item, dict) and loc[0] == "principles" else None
        kind = "principle" if loc[0] == "principles" else "example"
        parts.append(f"{kind} {pid!r} (#{loc[1]})" if pid else f"{kind} #{loc[1]}")
        field = ".".join(str(p) for p in loc[2:])
    else:
        field = ".".join(str(p) for p in loc)
    if field:
        parts.append(f"field {field!r}")
    return ": ".join(parts + [msg])


# pydantic inserts the union member's type name into ``loc`` for union fields.
_UNION_TAGS = {"str", "tuple[Message, ...]", "function-after[_requests_known(), Example]"}


def _line_of(node: Any, loc: tuple) -> int | None:
    """The 1-based line of the deepest YAML node that ``loc`` reaches."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == part]
            if not match:
                return line
            key, node = match[0]
            line = key.start_mark.line + 1
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


# --------------------------------------------------------------------------- sampling


def row_rng(seed: int, row_id: str | int) -> random.Random:
    """A random generator fixed by the run's seed and a row's id.

    Resumed and sharded runs make the same choices for the same row, whatever order
    the rows are processed in.
    """
    digest = hashlib.sha256(f"{seed}:{row_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def sample_principle(constitution: Constitution, rng: random.Random) -> Principle:
    """Sample one principle by weight."""
    weights = [p.weight for p in constitution.principles]
    return rng.choices(constitution.principles, weights=weights, k=1)[0]


def comparison_question(
    constitution: Constitution, principle: Principle | None, rng: random.Random
) -> str:
    """The judge's question: the principle's own, else one sampled from ``comparisons``."""
    if principle is not None and principle.comparison:
        return principle.comparison
    if constitution.comparisons:
        return rng.choice(constitution.comparisons)
    if principle is not None:
        return f"Which response better follows this principle: {principle.critique}"
    raise CaiError(
        f"constitution {constitution.name!r} has no comparison questions; add `comparisons` "
        "or a `comparison` to each principle"
    )


def _own_or_default(
    constitution: Constitution, principle: Principle, field: str, what: str, fix: str
):
    """The principle's ``field`` (its ``what``), else the constitution's; a ``CaiError``
    naming both if neither gives it (``fix`` shows what to add)."""
    value = getattr(principle, field) or getattr(constitution, field)
    if value is None:
        raise CaiError(
            f"constitution {constitution.name!r}: principle {principle.id!r} has no `{field}` "
            f"{what} and the constitution gives no default; add `{field}: {fix}` to the "
            "principle or at the top level"
        )
    return value


def pointwise_question(constitution: Constitution, principle: Principle) -> str:
    """The pointwise judge's yes/no question: the principle's own, else the constitution's."""
    return _own_or_default(
        constitution, principle, "pointwise", "question", "Does this response ...?"
    )


def contrast_personas(constitution: Constitution, principle: Principle) -> Contrast:
    """The contrast judge's personas: the principle's own, else the constitution's."""
    return _own_or_default(
        constitution, principle, "contrast", "personas", "{follows: ..., violates: ...}"
    )
