"""The quality of generated data: is a critique-and-revision dataset worth training on?

``assess`` scores each row (fluency under a fixed reference model, changed, echo, leak,
loop, on-topic, and toxicity and refusal before and after) and reports per principle and
per run; ``gate`` drops the rows that fail. ``generate-revisions`` runs it at the end of
every run, and ``cai quality OUTPUT_FOLDER`` on an existing output (``assess_folder``).
The thresholds are fixed in ``cai.quality.report``.
"""

from __future__ import annotations

from cai.quality.folder import assess_folder, example_texts
from cai.quality.report import (
    FLAGS,
    TARGETS,
    THRESHOLDS,
    Scorers,
    assess,
    check_targets,
    gate,
    row_flags,
    summarise,
)
from cai.quality.show import report_lines, report_markdown

__all__ = [
    "FLAGS",
    "TARGETS",
    "THRESHOLDS",
    "Scorers",
    "assess",
    "assess_folder",
    "check_targets",
    "example_texts",
    "gate",
    "report_lines",
    "report_markdown",
    "row_flags",
    "summarise",
]
