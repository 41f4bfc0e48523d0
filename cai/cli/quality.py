"""`cai quality`: wiring only; the report is cai.quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cai.cli.options import ConfigFlags, config_command
from cai.config import QualityConfig

QUALITY = ConfigFlags(QualityConfig)


@config_command(QUALITY)
def quality(
    cfg: QualityConfig,
    folder: Annotated[
        Path, typer.Argument(help="A generate-revisions output folder (finished or not).")
    ],
) -> None:
    """Is this critique-and-revision data worth training on? Score every row and report.

    Per row: fluency (mean token NLL of the initial answer, critiques and revision as
    answers to the prompt alone, under a fixed reference model; word salad is above 4
    nats), changed (not near-identical to the initial answer), echo of the critique, leak
    of the worked examples or requests, looping, off-topic (MiniLM cosine below 0.15), and
    toxicity and refusal before and after. Per principle and per run: the shares, the
    targets, and which are met. Writes quality.json and quality_rows.jsonl (one record
    per row, with its flags) into the folder unless --report says elsewhere. The same
    report is in a run's summary when generate-revisions runs with quality on (default).
    """
    from cai._util import write_json_atomic, write_text_atomic
    from cai.quality import assess_folder, report_lines

    records, report = assess_folder(folder, cfg.reference, cfg.constitution, cfg.batch_size)
    path = cfg.report or folder / "quality.json"
    write_json_atomic(path, report)
    write_text_atomic(
        path.with_name(path.stem + "_rows.jsonl"),
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
    )
    for line in report_lines(report):
        typer.echo(line)
    typer.echo(f"report: {path}")
