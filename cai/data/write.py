"""Write a finished run as a Hugging Face dataset folder, and push it to the Hub.

The folder is what ``datasets.load_dataset(folder)`` and the Hub both read::

    out_dir/README.md                              the dataset card, YAML header first
    out_dir/data/train-00000-of-00001.parquet      one or more shards per split
    out_dir/data/test-00000-of-00001.parquet

Every file is written through a temporary name and a rename, so a crash leaves either
the old file or the new one.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cai._util import atomic_file, write_text_atomic
from cai.errors import CaiError

log = logging.getLogger("cai")

ROWS_PER_SHARD = 50_000
PUSH_PATTERNS = ["README.md", "data/*"]
# Temporary files of an interrupted write_dataset must never be uploaded.
PUSH_IGNORE = [".*", "data/.*"]
# What a model push leaves out: trainer checkpoints and hidden files.
MODEL_IGNORE = [".*", "checkpoint-*", "checkpoint-*/*"]
_SHARD = re.compile(r"^(\w+)-\d{5}-of-\d{5}\.parquet$")
_SPLIT_NAME = re.compile(r"^\w+$")


def split_rows(
    rows: list[dict], *, test_size: float | int, seed: int, scheme: str = "default"
) -> dict[str, list[dict]]:
    """Split rows into named splits, deterministically for a given ``seed``.

    Rows are sorted by their ``"id"``, shuffled with ``random.Random(seed)`` and cut, so
    the input order does not matter and every row lands in exactly one split.

    - ``test_size``: a fraction in (0, 1) (the test split gets ``ceil(n * test_size)``
      rows) or an absolute count; 0 means no test split.
    - ``scheme="default"``: ``{"train", "test"}``.
    - ``scheme="cai-recipe"``: the HuggingFaceH4 / open CAI recipe layout,
      ``{"train_sft", "test_sft", "train_prefs", "test_prefs"}``: the train and test pools
      are each halved, one half for SFT and the other for preference training (SFT gets
      the extra row of an odd pool).
    """
    if scheme not in ("default", "cai-recipe"):
        raise CaiError(f"unknown split scheme {scheme!r}; use 'default' or 'cai-recipe'")
    ids = [row.get("id") for row in rows]
    if any(not isinstance(i, str) for i in ids):
        raise CaiError("every row needs a str 'id' to be split deterministically")
    if len(set(ids)) != len(ids):
        raise CaiError("row ids are not unique; deduplicate the rows before splitting")
    n_test = _test_count(test_size, len(rows))
    pool = sorted(rows, key=lambda row: row["id"])
    random.Random(seed).shuffle(pool)
    test, train = pool[:n_test], pool[n_test:]
    pools = {"train": train, "test": test} if n_test else {"train": train}
    if scheme == "default":
        return pools
    cut = {name: (len(pool) + 1) // 2 for name, pool in pools.items()}
    out = {f"{name}_sft": pool[: cut[name]] for name, pool in pools.items()}
    return out | {f"{name}_prefs": pool[cut[name] :] for name, pool in pools.items()}


def _test_count(test_size: float | int, n: int) -> int:
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)):
        raise CaiError(f"test_size must be a fraction or a count, not {test_size!r}")
    if isinstance(test_size, float) and test_size != 0:
        if not 0 < test_size < 1:
            raise CaiError(f"test_size {test_size} must be a fraction in (0, 1) or an int count")
        return math.ceil(n * test_size)
    if not 0 <= test_size <= n:
        raise CaiError(f"test_size {test_size} must be a count from 0 to the {n} rows there are")
    return int(test_size)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured markdown table; columns of numbers are right-aligned."""

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")

    def numeric(col: int) -> bool:
        values = [r[col] for r in rows if col < len(r) and r[col] is not None]
        return bool(values) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
        )

    aligns = ["---:" if numeric(i) else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join(aligns) + " |"]
    for r in rows:
        padded = list(r) + [None] * (len(headers) - len(r))
        lines.append("| " + " | ".join(cell(v) for v in padded) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class DatasetCard:
    """The README.md of a dataset folder: YAML metadata for the Hub, then prose."""

    title: str
    """The heading, and the card's ``pretty_name`` unless ``extra_yaml`` sets one."""
    summary: str
    """A paragraph in words: what the rows are, how they were made, what they are for."""
    sections: dict[str, str]
    """Heading -> markdown body, rendered in order (Constitution, Generation settings, ...)."""
    tags: list[str]
    license: str = "apache-2.0"
    task_categories: list[str] = field(default_factory=lambda: ["text-generation"])
    extra_yaml: dict = field(default_factory=dict)
    """More YAML metadata, e.g. ``{"cai": {"constitution_hash": ...}}``."""

    def metadata(self, splits: dict[str, int], num_bytes: dict[str, int] | None = None) -> dict:
        """The YAML front matter as a dict; ``splits`` maps split name -> row count.

        ``num_bytes`` (split -> arrow size, which write_dataset passes) completes
        ``dataset_info``; with it, ``load_dataset`` checks the row counts against the card.
        """
        reserved = {"configs", "dataset_info"} & set(self.extra_yaml)
        if reserved:
            raise CaiError(f"extra_yaml may not set {sorted(reserved)}: write_dataset owns them")
        meta: dict[str, Any] = {
            "license": self.license,
            "pretty_name": self.title,
            "task_categories": list(self.task_categories),
            "tags": list(self.tags),
            "configs": [
                {
                    "config_name": "default",
                    "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits],
                }
            ],
            "dataset_info": {
                "config_name": "default",
                "splits": [{"name": s, "num_examples": n} for s, n in splits.items()],
            },
        }
        if num_bytes is not None:
            for info in meta["dataset_info"]["splits"]:
                info["num_bytes"] = num_bytes.get(info["name"], 0)
            meta["dataset_info"]["dataset_size"] = sum(num_bytes.values())
        meta.update(self.extra_yaml)
        return meta

    def render(self, splits: dict[str, int], num_bytes: dict[str, int] | None = None) -> str:
        """The README.md text: front matter, title, summary, split sizes, then the sections."""
        meta = self.metadata(splits, num_bytes)
        front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
        parts = [f"---\n{front}---\n", f"# {self.title}\n", self.summary.strip() + "\n"]
        table = markdown_table(["Split", "Rows"], [[s, n] for s, n in splits.items()])
        parts.append("## Splits\n\n" + table)
        for heading, body in self.sections.items():
            parts.append(f"## {heading}\n\n{body.strip()}\n")
        return "\n".join(parts)


def write_dataset(
    out_dir: Path,
    splits: dict[str, list[dict]],
    card: DatasetCard,
    *,
    rows_per_shard: int = ROWS_PER_SHARD,
) -> list[Path]:
    """Write ``splits`` as parquet shards under ``out_dir/data`` and the card as README.md.

    All splits share one schema: the union of the rows' keys (a key a row lacks is None)
    with types inferred over every row, so nested columns such as ``chosen`` /
    ``rejected`` (lists of ``{"role", "content"}``), traces and provenance dicts survive
    the round trip. Parquet stores a dict column as a struct: a key that only some rows
    have comes back as None in the others, and an empty dict ``{}`` is stored as None.
    A split without rows is left out (``load_dataset`` cannot read one). Shards of
    earlier runs that were not rewritten are removed. Returns the written paths.
    """
    import pyarrow as pa

    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    for name in splits:
        if not _SPLIT_NAME.match(name):
            raise CaiError(f"split name {name!r} must be letters, digits and underscores")
    if rows_per_shard < 1:
        raise CaiError(f"rows_per_shard must be positive, not {rows_per_shard}")
    empty = [name for name, rows in splits.items() if not rows]
    if len(empty) == len(splits):
        raise CaiError(f"no rows to write to {out_dir}")
    if empty:  # load_dataset cannot read a split without rows, so none is written
        log.warning("dataset: skipping empty split(s) %s", ", ".join(empty))
        splits = {name: rows for name, rows in splits.items() if rows}
    splits, schema = _normalise(splits)
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale_tmp in data_dir.glob(".*.parquet.*.tmp"):
        stale_tmp.unlink(missing_ok=True)
    written: list[Path] = []
    num_bytes = dict.fromkeys(splits, 0)
    for name, rows in splits.items():
        n_shards = max(1, math.ceil(len(rows) / rows_per_shard))
        for i in range(n_shards):
            chunk = rows[i * rows_per_shard : (i + 1) * rows_per_shard]
            table = pa.Table.from_pylist(chunk, schema=schema)
            path = data_dir / f"{name}-{i:05d}-of-{n_shards:05d}.parquet"
            _write_parquet_atomic(table, path)
            num_bytes[name] += table.nbytes
            written.append(path)
    for old in data_dir.iterdir():
        if _SHARD.match(old.name) and old not in written:
            old.unlink()
    readme = out_dir / "README.md"
    counts = {name: len(rows) for name, rows in splits.items()}
    write_text_atomic(readme, card.render(counts, num_bytes))
    return [*written, readme]


def _normalise(splits: dict[str, list[dict]]):
    """Rows with every key any row has (None where absent), and their one arrow schema.

    Types are inferred per column over all rows of all splits, so a column's type does
    not depend on which row or split comes first.
    """
    import pyarrow as pa

    keys: dict[str, None] = {}
    for rows in splits.values():
        for row in rows:
            keys.update(dict.fromkeys(row))
    splits = {
        name: [{k: _drop_empty_dicts(row.get(k)) for k in keys} for row in rows]
        for name, rows in splits.items()
    }
    fields = []
    for key in keys:
        try:
            column = pa.array([row[key] for rows in splits.values() for row in rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
            raise CaiError(f"column {key!r} holds values parquet cannot store together: {e}") from e
        fields.append(pa.field(key, column.type))
    return splits, pa.schema(fields)


def _drop_empty_dicts(value: Any) -> Any:
    """``{}`` -> None at any depth: parquet cannot store a struct with no fields."""
    if isinstance(value, dict):
        return {k: _drop_empty_dicts(v) for k, v in value.items()} if value else None
    if isinstance(value, list):
        return [_drop_empty_dicts(v) for v in value]
    return value


def _write_parquet_atomic(table, path: Path) -> None:
    import pyarrow.parquet as pq

    with atomic_file(path, "wb") as f:
        pq.write_table(table, f)


def push_to_hub(
    out_dir: Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    dry_run: bool = False,
    repo_type: str = "dataset",
) -> dict:
    """Upload ``out_dir``'s README.md and data/ to the dataset repo ``repo_id``.

    With ``repo_type="model"``, upload a trained model folder instead (every file but
    checkpoints and hidden files).

    Returns the plan ``{"repo_id", "private", "files": [{"path", "size"}], "token_source"}``
    (plus ``"url"`` after a real push); never the token. ``dry_run`` makes no network call.
    Without ``token``, huggingface_hub's usual lookup applies (HF_TOKEN, then the saved
    ``hf auth login``).
    """
    import huggingface_hub
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import filter_repo_objects, validate_repo_id

    out_dir = Path(out_dir)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise CaiError(f"{repo_id!r} is not a Hub repo id (use 'user/name'): {e}") from e
    allow, ignore = (PUSH_PATTERNS, PUSH_IGNORE) if repo_type == "dataset" else (None, MODEL_IGNORE)
    if repo_type == "dataset" and (
        not (out_dir / "README.md").is_file() or not list(out_dir.glob("data/*.parquet"))
    ):
        raise CaiError(f"{out_dir} has no README.md and data/*.parquet; write the dataset first")
    relpaths = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    chosen = list(filter_repo_objects(relpaths, allow_patterns=allow, ignore_patterns=ignore))
    token_source = _token_source(token)
    plan: dict[str, Any] = {
        "repo_id": repo_id,
        "private": private,
        "files": [{"path": p, "size": (out_dir / p).stat().st_size} for p in chosen],
        "token_source": token_source,
    }
    if dry_run:
        return plan
    if token_source == "none":
        raise CaiError(
            f"no Hugging Face token to push {repo_id}: log in with `hf auth login` or set HF_TOKEN"
        )
    api = huggingface_hub.HfApi(token=token or None)
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=out_dir,
            repo_type=repo_type,
            allow_patterns=allow,
            ignore_patterns=ignore,
            commit_message=f"Upload {repo_type} written by cai",
        )
    except Exception as e:  # every huggingface_hub / network failure becomes one clear line
        raise _hub_error(e, repo_id, token) from (None if token and token in str(e) else e)
    prefix = "datasets/" if repo_type == "dataset" else ""
    plan["url"] = str(
        getattr(commit, "commit_url", None) or f"https://huggingface.co/{prefix}{repo_id}"
    )
    return plan


def _token_source(token: str | None) -> str:
    """Where the token will come from, judged without reading it.

    ``huggingface_hub.get_token()`` is not used: it may exchange an OIDC token or refresh
    an OAuth login over the network, and a dry run makes no network call.
    """
    from huggingface_hub import constants

    if token:
        return "argument"
    names = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE")
    if any(os.environ.get(n, "").strip() for n in names) or Path(constants.HF_TOKEN_PATH).is_file():
        return "environment/huggingface_hub login"
    return "none"


def _hub_error(e: Exception, repo_id: str, token: str | None) -> CaiError:
    """One line for a failed push, with the token (should the error quote it) masked."""
    detail = f"{type(e).__name__}: {e}"
    if token:
        detail = detail.replace(token, "***")
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403) or type(e).__name__ == "LocalTokenNotFoundError":
        hint = "log in with `hf auth login` or set HF_TOKEN (a token with write access)"
    else:
        hint = "check the repo id and your connection, then rerun"
    return CaiError(f"could not push to the Hub repo {repo_id}: {detail}; {hint}")
