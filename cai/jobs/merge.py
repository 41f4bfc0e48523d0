"""``cai merge``: join the output folders of a sharded run into one dataset."""

from __future__ import annotations

import json
from pathlib import Path

from cai._util import write_json_atomic
from cai.data import DatasetCard, split_rows, write_dataset, write_rejects
from cai.errors import CaiError
from cai.jobs.chunks import merge_outputs, missing_shards, output_lock
from cai.jobs.journal import RowJournal


def merge_shards(shard_dirs: list[Path], out_dir: Path, *, allow_missing: bool = False) -> int:
    """Check and join shard folders; write the merged dataset, card and journal.

    Every shard of the run must be given unless ``allow_missing`` (then the missing
    indices are recorded in run.json and the card). The output folder is locked."""
    for d in shard_dirs:
        if Path(d).resolve() == Path(out_dir).resolve():
            raise CaiError(f"output {out_dir} is one of the shards; give another -o folder")
    with output_lock(out_dir):
        return _merge(shard_dirs, out_dir, allow_missing)


def _merge(shard_dirs: list[Path], out_dir: Path, allow_missing: bool) -> int:
    rows, rejects, settings = merge_outputs(shard_dirs, allow_missing=allow_missing)
    num_shards, absent = missing_shards(shard_dirs)
    journal = RowJournal(out_dir / "rows.jsonl")
    if journal.path.exists():
        journal.path.unlink()
    journal.append(rows)  # every row, as the shards journaled them (before any gate)
    gated = {r.id for r in rejects if r.reason.startswith("quality:")}
    kept = [r for r in rows if r["id"] not in gated]  # a shard's quality gate still holds
    splits = split_rows(
        kept,
        test_size=settings.get("test_size", 0.0),
        seed=(settings.get("sampling") or {}).get("seed", 0),
        scheme=settings.get("split_scheme", "default"),
    )
    first_card = (shard_dirs[0] / "README.md").read_text() if shard_dirs else ""
    body = first_card.split("\n---\n", 1)[-1] if first_card.startswith("---") else first_card
    card = DatasetCard(
        title=f"Merged dataset ({len(shard_dirs)} shards)",
        summary=(
            f"{len(kept)} rows merged by `cai merge` from {len(shard_dirs)} shard folders, each "
            "row checked to appear exactly once"
            + (f" ({len(gated)} more dropped by the shards' quality gate)" if gated else "")
            + ". The card of the first shard follows; its counts and timings are that shard's."
            + (
                f" Shard index(es) {', '.join(map(str, absent))} of {num_shards} are missing "
                "(merged with --allow-missing)."
                if absent
                else ""
            )
        ),
        sections={"First shard's card": body.replace("\n# ", "\n### ")},
        tags=["constitutional-ai", "rlaif", "cai", "synthetic"],
    )
    write_dataset(out_dir, splits, card)
    write_rejects(out_dir / "rejects.jsonl", rejects)
    write_json_atomic(
        out_dir / "run.json",
        {
            "merged_from": [str(d) for d in shard_dirs],
            "num_shards": num_shards,
            "missing_shards": absent,
            "settings": settings,
            "expected_ids": [r["id"] for r in rows],
            "complete": True,
            "fingerprint": json.loads((shard_dirs[0] / "run.json").read_text()).get("fingerprint"),
        },
    )
    return len(kept)
