"""The quality report in words: terminal lines and the dataset card's section."""

from __future__ import annotations

from cai.data import markdown_table


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0%}"


def _num(v: float | None, fmt: str = ".2f") -> str:
    return "n/a" if v is None else format(v, fmt)


def fluency_rows(report: dict) -> list[list[str]]:
    return [[text, _num(f["median"]), _pct(f["above_4"])] for text, f in report["fluency"].items()]


def target_rows(report: dict) -> list[list[str]]:
    return [
        [
            t["target"],
            t["goal"],
            "n/a" if t["value"] is None else str(t["value"]),
            {True: "yes", False: "NO", None: "n/a"}[t["met"]],
        ]
        for t in report["targets"]
    ]


def helped_rows(report: dict) -> list[list[str]]:
    rows = []
    for key, fmt in (("toxicity", ".3f"), ("refusal", ".0%"), ("relevance", ".3f")):
        pair = report.get(key)
        if pair:
            rows.append([key, _num(pair["initial"], fmt), _num(pair["revision"], fmt)])
    return rows


def principle_rows(report: dict) -> list[list[str]]:
    return [
        [
            p["principle"],
            p["rows"],
            _num(p["fluency"]["revision"]["median"]),
            _pct(p["changed"]),
            _pct(p["echo_leak_or_loop"]),
            _pct(p["off_topic"]),
            _pct(p["passed"]),
        ]
        for p in report["principles"]
    ]


PRINCIPLE_HEADERS = [
    "principle",
    "rows",
    "revision NLL",
    "changed",
    "echo/leak/loop",
    "off-topic",
    "passed",
]


def report_markdown(report: dict, kept: int | None = None) -> str:
    """The dataset card's quality section."""
    parts = [
        f"Scored by `cai quality` on all {report['rows']} rows, before any gate. Fluency is "
        f"the mean token NLL (nats) of each text as an answer to the prompt alone under "
        f"`{report['reference']}` in fp32; word salad scores above 4. Thresholds: "
        + ", ".join(f"{k} {v}" for k, v in report["thresholds"].items())
        + ".",
        markdown_table(["text", "median NLL", "share above 4.0"], fluency_rows(report)),
        markdown_table(["target", "goal", "measured", "met"], target_rows(report)),
    ]
    helped = helped_rows(report)
    if helped:
        parts.append(markdown_table(["before / after", "initial answer", "revision"], helped))
    parts.append(
        f"Mean length change {_num(report['length_change_chars'], '+.0f')} characters; "
        f"critiques that found nothing to change: {_pct(report['no_change_critiques'])}; "
        f"rows that passed every check: {_pct(report['passed'])}."
        + (
            f" The quality gate kept {kept} of {report['rows']} rows; the others are in "
            "`rejects.jsonl` with their flags."
            if kept is not None
            else ""
        )
    )
    parts.append(markdown_table(PRINCIPLE_HEADERS, principle_rows(report)))
    parts += [f"Note: {n}" for n in report.get("notes", [])]
    return "\n\n".join(parts)


def report_lines(report: dict, kept: int | None = None) -> list[str]:
    """The short terminal summary."""
    f = report["fluency"]
    lines = [
        f"quality of {report['rows']} rows (reference {report['reference']}): median NLL "
        f"initial {_num(f['initial']['median'])}, critique {_num(f['critique']['median'])}, "
        f"revision {_num(f['revision']['median'])} (above 4.0: "
        f"{_pct(f['revision']['above_4'])})",
        f"  changed {_pct(report['changed'])}, echo/leak/loop "
        f"{_pct(report['echo_leak_or_loop'])}, off-topic {_pct(report['off_topic'])}, "
        f"passed {_pct(report['passed'])}"
        + (f", kept by the gate {kept}/{report['rows']}" if kept is not None else ""),
    ]
    for name, before, after in helped_rows(report):
        lines.append(f"  {name}: initial {before} -> revision {after}")
    missed = [t["target"] for t in report["targets"] if t["met"] is False]
    lines.append("  targets: " + ("all met" if not missed else "missed: " + "; ".join(missed)))
    return lines
