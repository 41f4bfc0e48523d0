"""``cai quality OUTPUT_FOLDER``: the quality report of an existing generate-revisions output."""

from __future__ import annotations

import json
from pathlib import Path

from cai.constitution import Constitution, load_constitution
from cai.errors import CaiError
from cai.jobs import RowJournal, strip_key
from cai.quality.report import Scorers, assess, check_targets

REVISION_COLUMNS = ("id", "prompt", "initial_response", "revision", "trace")


def example_texts(constitution: Constitution) -> list[str]:
    """The worked examples' answers, critiques and revisions: text a revision must not copy."""
    return [t for ex in constitution.examples for t in (ex.response, ex.critique, ex.revision)]


def read_revision_rows(folder: Path) -> list[dict]:
    """Every row of a generate-revisions output, before any gate: the row journal
    (``rows.jsonl``) when present, else the dataset's splits."""
    folder = Path(folder)
    journal = folder / "rows.jsonl"
    if journal.is_file():
        rows, _ = RowJournal(journal).read()
        run = folder / "run.json"
        state = json.loads(run.read_text()) if run.is_file() else {}
        if "expected_ids" in state:  # the journal may keep rows of an earlier, larger run
            expected = set(state["expected_ids"])
            rows = [strip_key(r) for r in rows if r["id"] in expected]
    elif (folder / "data").is_dir():
        import datasets

        try:
            ds = datasets.load_dataset(str(folder))
        except Exception as e:
            raise CaiError(f"cannot load {folder} as a dataset folder ({e})") from e
        rows = [r for split in ds.values() for r in split]
    else:
        raise CaiError(f"{folder} is not a cai generate-revisions output (no rows.jsonl or data/)")
    if not rows:
        raise CaiError(f"{folder} has no rows")
    missing = [c for c in REVISION_COLUMNS if c not in rows[0]]
    if missing:
        raise CaiError(
            f"{folder} is not a generate-revisions output: its rows lack {', '.join(missing)}"
        )
    return rows


def _constitution_of(folder: Path, rows: list[dict], given: str | None) -> Constitution | None:
    name = given
    if name is None:
        run = folder / "run.json"
        settings = json.loads(run.read_text()).get("settings", {}) if run.is_file() else {}
        name = settings.get("constitution") or (
            (rows[0].get("provenance") or {}).get("constitution", {}).get("name")
        )
    if name is None:
        return None
    try:
        return load_constitution(name)
    except CaiError:
        if given is not None:
            raise
        return None


def assess_folder(
    folder: Path, reference: str, constitution: str | None = None, batch_size: int = 16
) -> tuple[list[dict], dict]:
    """Score a generate-revisions output folder; return per-row records and the report.

    The constitution's worked examples (for the leak check) come from ``constitution``, or
    else the run's settings; without either, only the requests count as leak sources."""
    folder = Path(folder)
    rows = read_revision_rows(folder)
    c = _constitution_of(folder, rows, constitution)
    records, report = assess(
        rows, Scorers.load(reference, batch_size), example_texts(c) if c else ()
    )
    if c is None:
        report["notes"].append("constitution unknown: leaks checked against the requests only")
    kept = _kept_by_gate(folder)
    if kept is not None and rows:  # the run's gate: its share kept is a target too
        report["kept_rows"], report["kept_share"] = kept, round(kept / len(rows), 3)
        report["targets"] = check_targets(report)
    return records, report


def _kept_by_gate(folder: Path) -> int | None:
    """How many rows the run's quality gate kept, from its run.json (None: no gate ran)."""
    run = folder / "run.json"
    if not run.is_file():
        return None
    summary = json.loads(run.read_text()).get("summary") or {}
    return (summary.get("quality") or {}).get("kept_rows")
