"""Read prompts from any format, for ``cai generate-revisions`` and ``cai judge``.

``read_prompts(source)`` takes a shipped set name (``red-team``, ``helpful``), a ``.jsonl``,
``.json``, ``.csv`` or ``.parquet`` file, a ``Dataset.save_to_disk`` folder (a DatasetDict
folder too: ``split`` chooses, default ``train``) or a Hub id (``owner/name``).

Input columns, first found wins unless ``prompt_column`` names one:

- ``prompt``: a string (Anthropic HH text such as ``"\\n\\nHuman: Hi\\n\\nAssistant:"`` is
  split into turns) or a list of ``{role, content}`` messages;
- ``messages`` / ``conversation``: a list of ``{role, content}`` messages;
- ``chosen``: hh-rlhf's HH transcript (or a message list);
- fallbacks: ``question``, ``instruction``, ``text``, ``input``;
- ``id`` (optional): the row id; otherwise ``"p-"`` + 12 hex of the sha256 of the
  conversation's canonical JSON, with ``-2``, ``-3`` on repeats of the same conversation.
  A row whose id, given or generated, an earlier row already has is rejected, as is a row
  with a lone surrogate (``"\\ud800"`` in JSON) in any of its strings.

Output: a ``PromptRow`` per usable row, its conversation cut after the last user turn and
its other columns (all but the prompt column and ``id``) kept JSON-safe in ``extra``; a
``Reject`` per bad row (none is dropped silently). Example, for a ``prompts.jsonl`` of::

    {"prompt": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye\n\nAssistant:", "topic": "x"}
    {"prompt": "   "}

``read_prompts("prompts.jsonl")`` returns::

    [PromptRow(id="p-…", index=0, extra={"topic": "x"}, conversation=[
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"}])],
    [Reject(index=1, id=None, reason="empty prompt", raw='{"prompt": "   "}')]
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any

from cai._util import canonical_hash, write_text_atomic
from cai.data.messages import BadRow, to_conversation
from cai.errors import CaiError

PROMPT_COLUMNS = ("prompt", "messages", "conversation", "chosen")
FALLBACK_COLUMNS = ("question", "instruction", "text", "input")
RAW_CHARS = 500
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FORMATS = "a .jsonl, .json, .csv or .parquet file, a save_to_disk folder or a Hub id (owner/name)"


@dataclass(frozen=True)
class PromptRow:
    """One usable prompt."""

    id: str
    """Stable row id: the source's ``id`` column, else a content id ``p-<12 hex>[-n]``."""
    conversation: list[dict]
    """Chat messages up to and including the last user turn."""
    index: int
    """0-based position in the source (the line number - 1 for JSONL)."""
    extra: dict
    """The source row's other columns, JSON-safe, kept for later stages."""


@dataclass(frozen=True)
class Reject:
    """A source row that could not be used, and why."""

    index: int | None
    """0-based position in the source (the line number - 1 for JSONL), None if unknown."""
    id: str | None
    """The row's source id, if it had one."""
    reason: str
    """What was wrong, e.g. ``"empty prompt"`` or ``"malformed JSON on line 3: ..."``."""
    raw: str
    """The raw row or line, cut to at most 500 characters."""


def read_prompts(
    source: str,
    *,
    split: str | None = None,
    prompt_column: str | None = None,
    limit: int | None = None,
) -> tuple[list[PromptRow], list[Reject]]:
    """Read prompts from ``source``; return the usable rows and the rejected ones.

    ``split`` picks a DatasetDict folder's or Hub dataset's split (ignored for single files
    and folders); ``limit`` reads the first N source rows, rejected ones included. Raises
    ``CaiError`` for a missing or unreadable source, or when no row is usable.
    """
    if limit is not None and limit < 1:
        raise CaiError(f"limit must be at least 1, not {limit}")
    where, stream = _open_source(source, split)
    items = list(islice(stream, limit))
    columns = list(dict.fromkeys(k for _, r in items if isinstance(r, dict) for k in r))
    if prompt_column is not None and items and prompt_column not in columns:
        raise CaiError(
            f"{where} has no column {prompt_column!r}; its columns are: {', '.join(columns)}"
        )
    rows: list[PromptRow] = []
    rejects: list[Reject] = []
    seen: dict[str, tuple[int, bool]] = {}  # id -> (its row's position, generated?)
    repeats: Counter[str] = Counter()
    for index, raw in items:
        if isinstance(raw, Reject):  # a malformed line
            rejects.append(raw)
            continue
        source_id = _source_id(raw)
        try:
            _check_unicode(raw)
            if not isinstance(raw, dict):
                raise BadRow(f"wrong type: row is {type(raw).__name__}, expected an object")
            column = prompt_column or _detect_column(raw)
            if column not in raw:
                raise BadRow(f"no prompt column {column!r}")
            conversation = to_conversation(raw[column], column)
            row_id = source_id or _generated_id(conversation, repeats)
            if row_id in seen:
                raise BadRow(_duplicate(row_id, *seen[row_id], generated=source_id is None))
            extra = {k: _json_safe(v) for k, v in raw.items() if k not in (column, "id")}
        except BadRow as e:
            rejects.append(Reject(index, _printable(source_id), str(e), _clip(raw)))
            continue
        except RecursionError:
            why = "nested too deeply; flatten the row"
            rejects.append(Reject(index, _printable(source_id), why, type(raw).__name__))
            continue
        seen[row_id] = (index, source_id is None)
        rows.append(PromptRow(row_id, conversation, index, extra))
    if not rows:
        raise CaiError(_nothing_usable(where, len(items), rejects, columns))
    return rows, rejects


def read_table(source: str, *, split: str | None = None, limit: int | None = None):
    """Read a whole dataset (every column) as a ``datasets.Dataset``, for training.

    ``source`` is anything ``read_prompts`` takes. Malformed lines are skipped and counted
    in the returned number; a source with no rows raises ``CaiError``.
    """
    import datasets

    where, stream = _open_source(source, split)
    rows, bad = [], 0
    for _, raw in islice(stream, limit):
        if isinstance(raw, Reject) or not isinstance(raw, dict):
            bad += 1
        else:
            rows.append(raw)
    if not rows:
        raise CaiError(f"{where} has no usable rows ({bad} malformed); check the path and format")
    return datasets.Dataset.from_list(rows), bad


def content_id(conversation: list[dict]) -> str:
    """``"p-"`` + the first 12 hex digits of the conversation's ``canonical_hash``."""
    return "p-" + canonical_hash(conversation, 12)


def split_over_budget(
    rows: list[PromptRow], sizes: list[int], budget: int, what: Callable[[int], str]
) -> tuple[list[PromptRow], list[Reject]]:
    """Keep the rows whose token count ``sizes[i]`` fits ``budget``; reject the others.

    ``what`` says what was counted, for the reason: ``"over context: the judge prompt
    needs 9120 tokens > 8160 available (8192 - room for the answer)"``.
    """
    keep = [r for r, n in zip(rows, sizes) if n <= budget]
    rejects = [
        Reject(r.index, r.id, f"over context: {what(n)}", _clip(r.conversation))
        for r, n in zip(rows, sizes)
        if n > budget
    ]
    return keep, rejects


def write_rejects(path: Path, rejects: list[Reject]) -> None:
    """Write ``rejects`` as JSONL (one ``{index, id, reason, raw}`` object a line), atomically."""
    lines = [json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rejects]
    write_text_atomic(path, "".join(lines))


def shipped_prompt_set_path(name: str) -> Path:
    """The path of a shipped prompt set (``cai/prompt_sets/<name>.jsonl``)."""
    folder = resources.files("cai") / "prompt_sets"
    path = folder / f"{name}.jsonl"
    if path.is_file():
        return Path(os.fspath(path))
    found = folder.iterdir() if folder.is_dir() else []
    names = sorted(p.name[: -len(".jsonl")] for p in found if p.name.endswith(".jsonl"))
    names_text = ", ".join(names) if names else "none in this install"
    raise CaiError(f"unknown prompt set {name!r} (shipped: {names_text}); or give {_FORMATS}")


# --- sources ---------------------------------------------------------------------------


def _open_source(source: str, split: str | None) -> tuple[str, Iterable[tuple[int, Any]]]:
    bare = "/" not in source and os.sep not in source
    shipped = resources.files("cai") / "prompt_sets" / f"{source}.jsonl"
    if bare and shipped.is_file():
        return source, _read_jsonl(Path(os.fspath(shipped)))
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path), _read_folder(path, split)
    reader = _READERS.get(path.suffix.lower().lstrip("."))
    if path.is_file():
        if reader is None:
            raise CaiError(f"{path}: unsupported file type; give {_FORMATS}")
        return str(path), reader(path)
    if reader is not None or path.is_absolute() or source.startswith(("./", "../", "~")):
        raise CaiError(f"{path} does not exist; check the path")
    if bare:
        return source, _read_jsonl(shipped_prompt_set_path(source))
    if _HUB_ID.match(source):
        return source, _read_hub(source, split)
    raise CaiError(f"{source} does not exist; give {_FORMATS}")


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        with open(path, "rb") as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    yield i, json.loads(line.decode("utf-8-sig" if i == 0 else "utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                    why = f"{e.msg} at column {e.colno}" if hasattr(e, "colno") else "not UTF-8"
                    why = "nested too deeply" if isinstance(e, RecursionError) else why
                    text = _clip(line.decode("utf-8", "replace").rstrip("\r\n"))
                    yield i, Reject(i, None, f"malformed JSON on line {i + 1}: {why}", text)
    except OSError as e:
        raise CaiError(f"cannot read {path}: {e}") from e


def _read_json(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # one object per line under a .json name
            yield from _read_jsonl(path)
            return
        raise CaiError(f"{path} is not valid JSON ({e}); fix it or give a .jsonl file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise CaiError(f"cannot read {path} as UTF-8 JSON: {e}") from e
    except RecursionError:
        raise CaiError(f"{path} is nested too deeply to read; flatten its rows") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise CaiError(f'{path} must hold a list of objects or {{"data": [...]}}')
    yield from enumerate(data)


def _read_csv(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            for i, row in enumerate(reader):
                if None in row:
                    why = f"malformed CSV on line {reader.line_num}: too many fields"
                    yield i, Reject(i, None, why, _clip({str(k): v for k, v in row.items()}))
                else:
                    yield i, row
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CaiError(
            f"cannot read {path} as CSV: {e}; check it is UTF-8 CSV with a header"
        ) from e


def _read_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    try:
        index = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                yield index, row
                index += 1
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise CaiError(f"cannot read {path} as Parquet ({e}); check the file is not corrupt") from e


def _read_folder(path: Path, split: str | None) -> Iterator[tuple[int, Any]]:
    import datasets

    if (path / "data").is_dir() and (path / "README.md").is_file():
        # A cai output folder (or any Hub-style dataset folder): parquet shards and a card.
        try:
            ds = datasets.load_dataset(str(path), split=split or "train")
        except Exception as e:
            raise CaiError(f"cannot load {path} as a dataset folder ({e})") from e
        yield from enumerate(ds)
        return
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise CaiError(
            f"{path} is not a folder written by Dataset.save_to_disk ({e}); give {_FORMATS}"
        ) from e
    if isinstance(ds, datasets.DatasetDict):
        name = split or "train"
        if name not in ds:
            raise CaiError(f"{path} has no split {name!r}; choose one of: {', '.join(ds)}")
        ds = ds[name]
    yield from enumerate(ds)


def _read_hub(source: str, split: str | None) -> Iterator[tuple[int, Any]]:
    import datasets

    try:
        ds = datasets.load_dataset(source, split=split or "train")
    except Exception as e:
        raise CaiError(
            f"{source!r} is not a local file or folder, and loading it from the Hugging Face Hub "
            f"failed ({type(e).__name__}: {e}). Check the name and split, and the network "
            "(HF_HUB_OFFLINE/HF_DATASETS_OFFLINE block downloads), or give a local file."
        ) from e
    yield from enumerate(ds)


_READERS = dict(jsonl=_read_jsonl, json=_read_json, csv=_read_csv, parquet=_read_parquet)


# --- rows --------------------------------------------------------------------------------


def _detect_column(row: dict) -> str:
    for name in PROMPT_COLUMNS + FALLBACK_COLUMNS:
        if name in row:
            return name
    raise BadRow(f"no prompt column (looked for {', '.join(PROMPT_COLUMNS + FALLBACK_COLUMNS)})")


def _generated_id(conversation: list[dict], repeats: Counter[str]) -> str:
    """The content id, with ``-2``, ``-3`` on repeats of the same conversation."""
    base = content_id(conversation)
    repeats[base] += 1
    return base if repeats[base] == 1 else f"{base}-{repeats[base]}"


def _duplicate(row_id: str, other: int, other_generated: bool, *, generated: bool) -> str:
    """Why a row whose id is already taken by the row at position ``other`` is rejected."""
    if generated:
        return f"duplicate id {row_id!r}: this row's content id is the id given to row {other + 1}"
    if other_generated:
        return f"duplicate id {row_id!r} (the content id of row {other + 1})"
    return f"duplicate id {row_id!r} (also row {other + 1})"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_unicode(raw: Any) -> None:
    """Raise ``BadRow`` naming the first string (key or value) holding a lone surrogate.

    JSON ``"\\ud800"`` escapes decode to lone surrogates, which no UTF-8 file can hold.
    """
    stack: list[tuple[str, Any]] = [("row", raw)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise BadRow(f"invalid unicode: lone surrogate in {where}; fix the row's text")
        elif isinstance(value, dict):
            named = []
            for k, v in value.items():
                key = f"column {str(k)!r}" if where == "row" else f"{where}.{_printable(str(k))}"
                if _SURROGATE.search(str(k)):  # repr() above escapes it
                    raise BadRow(f"invalid unicode: lone surrogate in the name of {key}")
                named.append((key, v))
            stack.extend(reversed(named))
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(value))))


def _printable(text: str | None) -> str | None:
    """``text`` with any lone surrogate written as a ``\\udxxx`` escape, so it can be saved."""
    if text is None or not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _source_id(row: Any) -> str | None:
    if not isinstance(row, dict) or row.get("id") is None or str(row["id"]).strip() == "":
        return None
    return str(row["id"])


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _json_safe(value.tolist())
    if hasattr(value, "isoformat"):  # dates and times
        return value.isoformat()
    return str(value)


def _clip(raw: Any) -> str:
    try:
        text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
    except RecursionError:
        text = f"<a {type(raw).__name__} nested too deeply to show>"
    text = _printable(text) or ""
    return text if len(text) <= RAW_CHARS else text[: RAW_CHARS - 1] + "…"


def _nothing_usable(where: str, n: int, rejects: list[Reject], columns: list[str]) -> str:
    if n == 0:
        return f"{where} has no rows; give a file with at least one prompt"
    reasons = Counter(
        re.split(r" on line| in message|[:('\"]", r.reason)[0].strip() for r in rejects
    )
    common = "; ".join(f"{reason} ({count})" for reason, count in reasons.most_common(3))
    cols = ", ".join(columns) if columns else "none"
    return (
        f"no usable prompt in {where}: all {n} rows were rejected ({common}). "
        f"Columns: {cols}. Name the prompt column with --prompt-column if it is another one."
    )
