"""The revision-quality study: which generation settings give data worth training on?

One variable at a time from a baseline, each setting runs ``generate-revisions`` on the
same prompts (default: the first 24 shipped red-team prompts) with the same model and seed,
and is scored by the quality report (``cai.quality``, fixed SmolLM2 reference, all rows
before any gate). The table gives, per setting: the revisions' median NLL and share above
4.0, the initial answers' median NLL, changed, echo/leak/loop, off-topic, critiques that
copy the worked examples, toxicity and refusal before -> after, rows passing every check,
and generated tok/s.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/revision_study.py            # all
    .venv/bin/python benchmarks/revision_study.py --only baseline cool-stages       # some
    .venv/bin/python benchmarks/revision_study.py --confirm defaults --prompts helpful --limit 89

Each finished setting is appended to ``benchmarks/results/revision_study.jsonl`` (a rerun
skips settings already there with the same settings; ``--redo`` reruns them), and the
table is rewritten to ``benchmarks/results/revision_study.md``. ``--samples N`` prints N
random rows of each run whole. The outputs go to ``out/study/<name>``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
LOG = RESULTS / "revision_study.jsonl"
TABLE = RESULTS / "revision_study.md"
STUDY_PROMPTS = REPO / "benchmarks" / "study_prompts"

BASELINE: dict = {
    "sampling": {"temperature": 0.7, "top_p": 0.9, "min_p": 0.0, "repetition_penalty": 1.0},
    "few_shot": True,
    "prompts_dir": str(REPO / "benchmarks" / "study_prompts_original"),
}
"""The study's starting point: the issue's fluent setting (no penalty, top-p 0.9), the
worked examples on, and the templates as they were before the study
(``study_prompts_original``). Everything is pinned, so the registry's defaults and the
shipped templates, which the study chose, do not change a rerun; ``--confirm defaults``
runs the shipped defaults instead."""


def combo(templates: str | None, **sampling: float) -> tuple[str, dict]:
    """A combination setting: these sampling values, no worked examples, and the templates
    in ``benchmarks/<templates>`` (None: the baseline's)."""
    over: dict = {"sampling": sampling, "few_shot": False}
    if templates is not None:
        over["prompts_dir"] = str(REPO / "benchmarks" / templates)
    return "combination", over


SETTINGS: dict[str, tuple[str, dict]] = {
    # name: (the variable studied, overrides of the baseline)
    "baseline": ("-", {}),
    "penalty-1.1": ("penalty", {"sampling": {"repetition_penalty": 1.1}}),
    "penalty-1.2": ("penalty", {"sampling": {"repetition_penalty": 1.2}}),
    "top-p-1.0": ("top-p/min-p", {"sampling": {"top_p": 1.0}}),
    "min-p-0.1": ("top-p/min-p", {"sampling": {"top_p": 1.0, "min_p": 0.1}}),
    "min-p-0.05+top-p-0.9": ("top-p/min-p", {"sampling": {"min_p": 0.05}}),
    "cool-stages": (
        "stage temperature",
        {"critique_temperature": 0.3, "revision_temperature": 0.3},
    ),
    "cool-critique": ("stage temperature", {"critique_temperature": 0.3}),
    "few-shot-0": ("worked examples", {"few_shot": False}),
    "few-shot-1": ("worked examples", {"few_shot_examples": 1}),
    "templates-own-answer": ("template wording", {"prompts_dir": str(STUDY_PROMPTS)}),
    "templates-quote-request": (
        "template wording",
        {"prompts_dir": str(REPO / "benchmarks" / "study_prompts_quote")},
    ),
    "rounds-2": ("rounds", {"rounds": 2}),
    # combinations of the single-variable winners (no worked examples in each)
    "combo-penalty-no-examples": combo(None, repetition_penalty=1.1),
    "combo-quote-penalty-1.2": combo("study_prompts_quote", repetition_penalty=1.2),
    "combo-quote-top-p-1.0": combo("study_prompts_quote", repetition_penalty=1.1, top_p=1.0),
    "combo-quote2": combo("study_prompts_quote2", repetition_penalty=1.1),
    "combo-penalty-no-examples-quote": combo("study_prompts_quote", repetition_penalty=1.1),
}


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def row_of(name: str, variable: str, settings: dict, summary: dict) -> dict:
    q = summary["quality"]
    f = q["fluency"]
    tox, ref = q.get("toxicity") or {}, q.get("refusal") or {}
    return {
        "name": name,
        "variable": variable,
        "settings": settings,
        "rows": q["rows"],
        "initial_nll": f["initial"]["median"],
        "critique_nll": f["critique"]["median"],
        "revision_nll": f["revision"]["median"],
        "revision_above_4": f["revision"]["above_4"],
        "changed": q["changed"],
        "echo_leak_loop": q["echo_leak_or_loop"],
        "off_topic": q["off_topic"],
        "critiques_leaking": q["critiques_leaking_examples"],
        "toxicity": [tox.get("initial"), tox.get("revision")],
        "refusal": [ref.get("initial"), ref.get("revision")],
        "passed": q["passed"],
        "targets_met": sum(bool(t["met"]) for t in q["targets"]),
        "targets": len(q["targets"]),
        "tok_s": summary["tokens_per_second"],
        "seconds": summary["seconds"],
    }


def record_folder(name: str, folder: str) -> None:
    """Score an existing output and record it as a row of the study."""
    from cai.quality import assess_folder

    out = Path(folder)
    state = json.loads((out / "run.json").read_text())
    _, report = assess_folder(out, "smollm2-135m")
    summary = {**state["summary"], "quality": report}
    settings = state["settings"]
    row = row_of(name, "confirm", settings, summary)
    model = settings["backend"]["model"]
    n = report["rows"]
    row.update(key={"folder": str(out), "model": model}, prompts=f"{settings['prompts']}[:{n}]",
               model=model, resolved=resolved_settings(out))  # fmt: skip
    record(row)
    print(json.dumps(row), flush=True)


def resolved_settings(out: Path) -> dict:
    """The settings the run resolved (command line, registry, defaults), from a row's
    provenance."""
    from cai.quality.folder import read_revision_rows

    prov = read_revision_rows(out)[0]["provenance"]
    keys = ("sampling", "stage_temperatures", "few_shot", "few_shot_examples", "templates")
    return {k: prov.get(k) for k in keys}


def record(row: dict) -> list[dict]:
    """Add ``row`` to the log (replacing an earlier run of the same name and settings),
    re-reading it under a lock so that concurrent study processes keep each other's rows;
    rewrite the table."""
    import fcntl

    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / ".revision_study.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = [json.loads(x) for x in LOG.read_text().splitlines()] if LOG.is_file() else []
        done = [d for d in done if not (d["name"] == row["name"] and d.get("key") == row["key"])]
        done.append(row)
        tmp = LOG.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(d) + "\n" for d in done))
        tmp.replace(LOG)
        write_table(done)
    return done


def fmt(v, spec=".2f"):
    return "n/a" if v is None else format(v, spec)


def write_table(rows: list[dict]) -> None:
    head = (
        "| setting | variable | prompts | rows | initial NLL | critique NLL | revision NLL | "
        "rev. >4.0 | changed | echo/leak/loop | off-topic | critiques copying examples | "
        "toxicity init->rev | refusal init->rev | passed | targets met | tok/s |\n"
        "|" + "---|" * 17 + "\n"
    )
    lines = [
        f"| {r['name']} | {r['variable']} | {r.get('prompts', '')} | {r['rows']} | "
        f"{fmt(r['initial_nll'])} | {fmt(r['critique_nll'])} | {fmt(r['revision_nll'])} | "
        f"{fmt(r['revision_above_4'], '.0%')} | {fmt(r['changed'], '.0%')} | "
        f"{fmt(r['echo_leak_loop'], '.0%')} | {fmt(r['off_topic'], '.0%')} | "
        f"{fmt(r['critiques_leaking'], '.0%')} | "
        f"{fmt(r['toxicity'][0], '.3f')} -> {fmt(r['toxicity'][1], '.3f')} | "
        f"{fmt(r['refusal'][0], '.0%')} -> {fmt(r['refusal'][1], '.0%')} | "
        f"{fmt(r['passed'], '.0%')} | {r['targets_met']}/{r['targets']} | "
        f"{fmt(r['tok_s'], '.1f')} |"
        for r in rows
    ]
    TABLE.write_text(
        "# Revision-quality study\n\nEach row: `generate-revisions` then the quality report "
        "(`cai quality`, all rows before the gate, SmolLM2-135M fp32 reference). Written by "
        "`benchmarks/revision_study.py`.\n\n" + head + "\n".join(lines) + "\n"
    )


def print_samples(folder: Path, n: int, seed: int = 0) -> None:
    from cai.quality.folder import read_revision_rows

    rows = read_revision_rows(folder)
    for r in random.Random(seed).sample(rows, min(n, len(rows))):
        print("=" * 80)
        print("PROMPT:", r["prompt"][-1]["content"])
        print("INITIAL:", r["initial_response"])
        for s in r["trace"]["rounds"]:
            print(f"CRITIQUE ({s['principle_id']}):", s["critique"])
        print("REVISION:", r["revision"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="run only these settings")
    ap.add_argument("--confirm", help="run one named setting (or 'defaults') as given")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", default="red-team")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=24)
    ap.add_argument("--samples", type=int, default=0)
    ap.add_argument("--redo", action="store_true")
    ap.add_argument("--tag", default="", help="suffix for the run names (e.g. the model)")
    ap.add_argument(
        "--from-folder",
        nargs=2,
        metavar=("NAME", "FOLDER"),
        help="score an existing generate-revisions output (e.g. the recipe's revisions stage) "
        "with `cai quality` and record it under NAME, instead of generating",
    )
    args = ap.parse_args()
    if args.from_folder:
        record_folder(*args.from_folder)
        return

    from cai.backends import load_backend
    from cai.config import ReviseConfig
    from cai.revise import run_revisions

    done = [json.loads(line) for line in LOG.read_text().splitlines()] if LOG.is_file() else []
    if args.confirm:
        todo = {args.confirm: ("confirm", {} if args.confirm == "defaults" else None)}
        if args.confirm != "defaults":
            todo = {args.confirm: ("confirm", SETTINGS[args.confirm][1])}
    else:
        todo = {k: v for k, v in SETTINGS.items() if not args.only or k in args.only}
    backend = load_backend("transformers", args.model, batch_size=args.batch_size)
    for name, (variable, over) in todo.items():
        base = {} if args.confirm == "defaults" else BASELINE
        settings = merge(base, over)
        settings = merge(settings, {"sampling": {"max_new_tokens": args.max_new_tokens}})
        run_name = f"{name}{args.tag}"
        key = {"model": args.model, "prompts": args.prompts, "limit": args.limit, **settings}
        if not args.redo and any(d.get("key") == key and d["name"] == run_name for d in done):
            print(f"{run_name}: done already", file=sys.stderr)
            continue
        out = REPO / "out" / "study" / run_name
        cfg = ReviseConfig.model_validate(
            {
                **settings,
                "prompts": args.prompts,
                "limit": args.limit,
                "output": str(out),
                "no_cache": True,
                "backend": {"model": args.model, "batch_size": args.batch_size},
                "chunk_size": args.limit,
            }
        )
        if out.exists():
            import shutil

            shutil.rmtree(out)
        start = time.perf_counter()
        summary = run_revisions(cfg, backend=backend)
        row = row_of(run_name, variable, settings, summary)
        row.update(
            key=key,
            prompts=f"{args.prompts}[:{args.limit}]",
            model=args.model,
            wall_seconds=round(time.perf_counter() - start, 1),
            resolved=resolved_settings(out),
        )
        done = record(row)
        print(json.dumps(row), flush=True)
        if args.samples:
            print_samples(out, args.samples)


if __name__ == "__main__":
    main()
