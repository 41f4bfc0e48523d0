"""Count the hostile cases: which cases of ../shared/hostile-cases.md have a passing test.

Every regression test for a hostile case is marked ``@pytest.mark.hostile("<case>")``. This
script runs those tests (``pytest -m hostile``, slow ones included unless ``--fast``),
matches each marker to the nearest case row of the probe's table by word overlap, and
prints, per table section, each case with what it did in the probe and its tests'
outcome. Cases the probe found OK count as passing without a test of their own.

    .venv/bin/python benchmarks/hostile.py            # runs the tests, ~2 minutes
    .venv/bin/python benchmarks/hostile.py --fast     # skips tests marked slow

Writes ``benchmarks/results/hostile.json``. The probe's count was 146 cases tried, 92 OK.
This table has one row per group of similar cases, so its counts are smaller.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = REPO.parent / "shared" / "hostile-cases.md"
RESULT = REPO / "benchmarks" / "results" / "hostile.json"

PLUGIN = """
import json, os
OUT = os.environ["CAI_HOSTILE_OUT"]
results = []
def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        cases = [m.args[0] for m in getattr(report, "_hostile", [])]
        results.append({"test": report.nodeid, "outcome": report.outcome, "cases": cases})
import pytest
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result()._hostile = list(item.iter_markers("hostile"))
def pytest_sessionfinish(session):
    with open(OUT, "w") as f:
        json.dump(results, f)
"""


def parse_cases(text: str) -> list[dict]:
    """Every row of the probe's tables: section, case, today, want, ok."""
    rows, section = [], ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or cells[0] in ("case", "---"):
            continue
        case, today, want = (c.replace("**", "") for c in cells)
        rows.append(
            {"section": section, "case": case, "today": today, "want": want, "ok": want == "OK"}
        )
    return rows


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9_.]+", text.lower()) if len(w) > 2}


def match(marker: str, cases: list[dict]) -> int | None:
    """The index of the case whose text shares most words with ``marker``."""
    norm = marker.replace("`", "").lower()
    for i, c in enumerate(cases):
        if norm in c["case"].replace("`", "").lower():
            return i
    mw = words(marker)
    scored = [
        (len(mw & words(c["case"])) / (min(len(mw), len(words(c["case"]))) or 1), i)
        for i, c in enumerate(cases)
    ]
    best, index = max(scored)
    return index if best >= 0.5 else None


def run_tests(fast: bool) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        plugin = Path(tmp) / "hostile_plugin.py"
        plugin.write_text(PLUGIN)
        out = Path(tmp) / "results.json"
        marks = "hostile and not vllm" + (" and not slow" if fast else "")
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", marks, "-p", "hostile_plugin"]
        env = {**__import__("os").environ, "CAI_HOSTILE_OUT": str(out), "PYTHONPATH": tmp}
        subprocess.run(cmd, cwd=REPO, env=env, check=False)
        return json.loads(out.read_text()) if out.is_file() else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fast", action="store_true", help="skip tests marked slow")
    args = ap.parse_args()
    if not CASES.is_file():
        sys.exit(f"{CASES} is not here; nothing to count")
    cases = parse_cases(CASES.read_text())
    results = run_tests(args.fast)
    per_case: dict[int, list[dict]] = {}
    unmatched: list[str] = []
    for r in results:
        for marker in r["cases"]:
            i = match(marker, cases)
            if i is None:
                unmatched.append(marker)
            else:
                per_case.setdefault(i, []).append(r)
    table = []
    for i, c in enumerate(cases):
        tests = per_case.get(i, [])
        passed = sum(t["outcome"] == "passed" for t in tests)
        failed = sum(t["outcome"] == "failed" for t in tests)
        if tests:
            status = f"FAIL ({failed})" if failed else "pass" if passed else "skipped"
        else:
            status = "OK in probe" if c["ok"] else "NO TEST"
        table.append({**c, "tests": len(tests), "passed": passed, "status": status})
    section = None
    for row in table:
        if row["section"] != section:
            section = row["section"]
            print(f"\n## {section}")
        print(f"  [{row['status']:>11}] {row['case'][:90]}  ({row['passed']}/{row['tests']} tests)")
    not_ok = [r for r in table if not r["ok"]]
    fixed = [r for r in not_ok if r["status"] == "pass"]
    summary = {
        "case_rows": len(table),
        "ok_in_probe": len(table) - len(not_ok),
        "not_ok_in_probe": len(not_ok),
        "not_ok_now_passing": len(fixed),
        "not_ok_without_test": [r["case"] for r in not_ok if r["status"] == "NO TEST"],
        "failing": [r["case"] for r in table if r["status"].startswith("FAIL")],
        "hostile_tests": len(results),
        "hostile_tests_passed": sum(r["outcome"] == "passed" for r in results),
        "hostile_tests_skipped": sum(r["outcome"] == "skipped" for r in results),
        "markers_matching_no_case": sorted(set(unmatched)),
    }
    print("\n" + json.dumps(summary, indent=2))
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({"summary": summary, "cases": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
