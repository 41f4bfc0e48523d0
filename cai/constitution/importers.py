"""Import constitutions published as JSON and write them as cai YAML.

Two formats are known; each file's kind is found from the shape of its JSON, not its name:

* ``anthropic``: the Constitutional AI paper's files. A dict of
  ``{key: {"prompt": [critique], "edit_request": revision}}`` gives the principles, a list
  of judge questions ending in ``Options:`` gives ``comparisons``, and a list of whole
  ``Human:/Assistant:/CritiqueRequest:/...`` traces gives ``examples``.
* ``llm-swarm``: ``{"constitutions": [{"critic", "revision"}], "system_chat": [[messages]]}``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from cai.constitution.schema import Constitution, Example, Message, Principle
from cai.errors import CaiError

Format = Literal["anthropic", "llm-swarm"]

_TAIL = ["CritiqueRequest", "Critique", "RevisionRequest", "Revision"]
_LABELS = re.compile(r"\n\n(Human|Assistant|CritiqueRequest|Critique|RevisionRequest|Revision):")


def import_files(paths: list[Path], fmt: Format, name: str) -> Constitution:
    """Build one constitution from the JSON files of a published format.

    Raises ``CaiError`` naming the file when a file is unreadable, of no known shape or
    malformed, and when the files hold no principles.
    """
    if fmt not in ("anthropic", "llm-swarm"):
        raise CaiError(f"unknown import format {fmt!r}; use 'anthropic' or 'llm-swarm'")
    principles: list[Principle] = []
    comparisons: list[str] = []
    examples: list[Example] = []
    for path in paths:
        data = _read_json(path)
        try:
            if fmt == "llm-swarm":
                principles += _swarm_principles(data, path, name, start=len(principles))
                examples += _swarm_examples(data, path)
            elif _is_instructions(data):
                principles += [_paper_principle(k, v) for k, v in data.items()]
            elif _is_str_list(data) and all("CritiqueRequest:" in s for s in data):
                examples += [_paper_example(s, path, i) for i, s in enumerate(data)]
            elif _is_str_list(data) and all(s.rstrip().endswith("Options:") for s in data):
                comparisons += [s.rstrip().removesuffix("Options:").strip() for s in data]
            elif isinstance(data, list) and data and all(_has_prompt(x) for x in data):
                raise CaiError(
                    f"{path}: a list of prompt records (judge few-shot prompts or a prompt data "
                    "set), not part of a constitution; pass the critique/revision instructions, "
                    "the judge instructions or the critique/revision few-shot prompts"
                )
            else:
                swarm = isinstance(data, dict) and "constitutions" in data
                hint = "; it looks like the llm-swarm format" if swarm else ""
                raise CaiError(f"{path}: not a known {fmt} constitution file{hint}")
        except ValidationError as e:
            err = e.errors()[0]
            raise CaiError(f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    origin = ", ".join(Path(p).name for p in paths) or "no files"
    if not principles:
        raise CaiError(
            f"no principles in {origin}: the {fmt} format needs its critique/revision "
            "instructions file (e.g. CritiqueRevisionInstructions.json)"
        )
    try:
        return Constitution(
            name=name,
            version="1",
            description=f"Imported from {origin} ({fmt} format).",
            principles=tuple(principles),
            comparisons=tuple(comparisons),
            examples=tuple(examples),
        )
    except ValidationError as e:
        raise CaiError(f"{origin}: {e.errors()[0]['msg']}") from None


MAX_BYTES = 64 * 1024 * 1024
"""The largest JSON file imported (the paper's files are under 1 MB)."""


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: refuse an object that repeats a key."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _read_json(path: Path) -> Any:
    try:
        if Path(path).stat().st_size > MAX_BYTES:
            raise CaiError(f"{path}: bigger than {MAX_BYTES // 2**20} MiB; not a constitution")
        raw = Path(path).read_bytes()
    except OSError as e:
        raise CaiError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CaiError(
            f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
            "save the file as UTF-8"
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError:
        pass
    except _DuplicateKey as e:
        raise CaiError(
            f"{path}: the key {e.key!r} appears twice in one object; keep one of them"
        ) from None
    except RecursionError:
        raise CaiError(f"{path}: JSON nested too deeply; not a constitution") from None
    try:
        lines = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
    except (json.JSONDecodeError, RecursionError):
        raise CaiError(f"{path}: not valid JSON") from None
    raise CaiError(
        f"{path}: a JSON Lines data set ({len(lines)} records), not part of a constitution"
    )


def _has_prompt(item: Any) -> bool:
    return isinstance(item, dict) and "prompt" in item


def _is_str_list(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and all(isinstance(s, str) for s in data)


def _is_instructions(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and bool(data)
        and all(
            isinstance(v, dict)
            and _is_str_list(v.get("prompt"))
            and isinstance(v.get("edit_request"), str)
            for v in data.values()
        )
    )


def _unlabel(text: str, label: str, answer: str) -> str:
    """Drop the ``\\n\\nLabel: `` prefix and ``\\n\\nAnswer:`` suffix of a paper request."""
    text = text.strip().removeprefix(f"{label}:").removesuffix(f"{answer}:")
    return text.strip()


def _paper_principle(key: str, value: dict[str, Any]) -> Principle:
    return Principle(
        id=key,
        critique=_unlabel(value["prompt"][0], "CritiqueRequest", "Critique"),
        revision=_unlabel(value["edit_request"], "RevisionRequest", "Revision"),
    )


def _trace_example(chat: list[tuple[str, str]], tail: list[str], where: str) -> Example:
    """An example from user/assistant ``(role, text)`` turns and the four trace steps."""
    roles = [role for role, _ in chat]
    if len(chat) < 2 or roles != ["user", "assistant"] * (len(chat) // 2) or len(tail) != 4:
        raise CaiError(
            f"{where}: expected alternating user/assistant turns ending with an assistant "
            "answer, then critique request, critique, revision request and revision"
        )
    prompt = [Message(role=role, content=text.strip()) for role, text in chat[:-1]]
    creq, crit, rreq, rev = (t.strip() for t in tail)
    return Example(
        prompt=prompt[0].content if len(prompt) == 1 else tuple(prompt),
        response=chat[-1][1].strip(),
        critique_request=creq,
        critique=crit,
        revision_request=rreq,
        revision=rev,
    )


def _paper_example(text: str, path: Path, index: int) -> Example:
    """Parse one ``Human:/Assistant:/CritiqueRequest:/...`` few-shot trace."""
    parts = _LABELS.split("\n\n" + text.lstrip("\n"))
    turns = list(zip(parts[1::2], parts[2::2], strict=True))
    if turns and turns[-1][0] == "Human" and not turns[-1][1].strip():
        turns.pop()
    where = f"{path}: few-shot #{index}"
    if [label for label, _ in turns[-4:]] != _TAIL:
        raise CaiError(f"{where}: does not end with {', '.join(_TAIL)}")
    roles = {"Human": "user", "Assistant": "assistant"}
    chat = [(roles.get(label, label), body) for label, body in turns[:-4]]
    return _trace_example(chat, [body for _, body in turns[-4:]], where)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "principle"


def _swarm_principles(data: Any, path: Path, name: str, start: int) -> list[Principle]:
    items = data.get("constitutions") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(
        isinstance(c, dict)
        and isinstance(c.get("critic"), str)
        and isinstance(c.get("revision"), str)
        for c in items
    ):
        raise CaiError(
            f"{path}: not a known llm-swarm constitution file: expected "
            '{"constitutions": [{"critic": ..., "revision": ...}], "system_chat": [...]}'
        )
    return [
        Principle(id=f"{_slug(name)}-{start + i}", critique=c["critic"], revision=c["revision"])
        for i, c in enumerate(items)
    ]


def _swarm_examples(data: dict[str, Any], path: Path) -> list[Example]:
    examples = []
    for i, trace in enumerate(data.get("system_chat") or []):
        where = f"{path}: system_chat #{i}"
        if not isinstance(trace, list) or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in trace
        ):
            raise CaiError(f"{where}: expected a list of {{role, content}} messages")
        turns = [(str(m.get("role")), m["content"]) for m in trace]
        tail_roles = [role for role, _ in turns[-4:]]
        if tail_roles != ["user", "assistant"] * 2:
            raise CaiError(f"{where}: the last four messages must alternate user/assistant")
        examples.append(_trace_example(turns[:-4], [text for _, text in turns[-4:]], where))
    return examples


class _Dumper(yaml.SafeDumper):
    """Safe dumper that writes multi-line strings as literal ``|`` blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def to_yaml(constitution: Constitution) -> str:
    """The constitution as clean YAML: defaults and empty fields left out, ``|`` blocks.

    ``parse_constitution(to_yaml(c)) == c`` holds.
    """
    data = constitution.model_dump(mode="json", exclude_defaults=True)
    data = {"name": data.pop("name"), "version": constitution.version, **data}
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
