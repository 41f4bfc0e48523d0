"""The preference-optimisation family side by side, from one SmolLM2 SFT start.

    .venv/bin/python benchmarks/preference.py > preference.log 2>&1 &   # about an hour on 2 cores
    .venv/bin/python benchmarks/preference.py --steps 4 --limit 8 --rounds 1   # a quick look
    (both run the recipe's revisions, SFT and judge stages first, unless they are done)

1. **The start**: ``recipes/smollm2-cai.yaml``'s revisions, SFT and judge stages (run by
   ``cai pipeline``, skipped when already done): the SFT model and its AI preferences (two
   samples per prompt, judged in the recipe's likelihood mode; the train split).
2. **Offline methods**: DPO, IPO, ORPO, SimPO and KTO (its rows from the same pairs),
   each from the SFT model, on the same pairs, for the same steps and learning rate, each
   in its own process (wall time and peak resident memory per method), each scored on the
   judge's held-out pairs (``eval_split: test``: how often the chosen answer gets the
   higher implicit reward, and the mean margin).
3. **Iterative DPO**: the same recipe with ``rounds: 3``: each round samples two answers per
   prompt from the current policy, judges them and runs DPO for the same steps. Its stages
   go into the recipe's output folder (``out/pipeline/smollm2-cai/round<k>-*``), beside
   the SFT and judge stages they start from.
   With ``--online-dpo-steps N``, online DPO too: from the SFT model on 48 red-team
   prompts, two samples per prompt per step labelled by the recipe's judge.
4. **Evaluation**: ``cai evaluate`` of the base, the SFT model and every trained model on
   held-out prompts (the PALMS red-team prompts of ``../shared/data`` when present, else
   our red-team set, and our helpful set), with bootstrap 95% intervals; the judge's win
   rate is against the SFT model.

Writes ``benchmarks/results/preference.{json,md}``; models and evaluation go under
``out/bench-preference`` (a rerun skips the models already trained with the same settings;
``--fresh`` trains them again).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

from cai._util import write_text_atomic

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_info, write_json  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "smollm2-cai.yaml"
OUT = REPO / "out" / "bench-preference"
PALMS = REPO.parent / "shared" / "data" / "cai-paper" / "palms-redteam-prompts.jsonl"
METHODS = {
    "dpo": ("dpo", {"beta": 0.1}),
    "ipo": ("dpo", {"beta": 0.1, "loss_type": ["ipo"]}),
    "orpo": ("orpo", {"beta": 0.1}),
    "simpo": ("simpo", {}),  # beta 2.0, simpo_gamma 1.0, cpo_alpha 0 (cai's defaults)
    "kto": ("kto", {"beta": 0.1}),
}
"""Benchmark name -> (cai train command, its trl settings beyond the shared ones)."""


def shared_trl(steps: int) -> dict:
    return {"max_steps": steps, "per_device_train_batch_size": 4, "learning_rate": 5e-6,
            "max_length": 512}  # fmt: skip


def start() -> tuple[str, str]:
    """Run (or skip) the recipe's revisions, SFT and judge stages; return the SFT model and
    the preference data."""
    from cai.pipeline.recipe import load_recipe
    from cai.pipeline.run import run_pipeline

    recipe = load_recipe(RECIPE).model_copy(update={"run": ["revisions", "sft", "judge"]})
    run_pipeline(recipe, str(RECIPE))
    return str(recipe.output / "sft"), str(recipe.output / "judge")


def figures(name: str, trainer: str, started: float, s: dict, trl: dict, **more) -> dict:
    """One method's row: wall time since ``started``, this process's peak memory, and the
    numbers of its training summary ``s``."""
    margins = s.get("reward_margins") or []
    return {
        "method": name,
        "trainer": trainer,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "steps": s["steps"],
        "rows": s["data"]["rows"],
        "first_loss": s["first_loss"],
        "last_loss": s["last_loss"],
        "margin_first": margins[0] if margins else None,
        "margin_last": margins[-1] if margins else None,
        **more,
        "trl": trl,
    }


def online_dpo(sft: str, steps: int, prompts: int) -> dict:
    """(In a child process.) Online DPO from the SFT model, labelled by the recipe's judge."""
    from cai.config import load_config
    from cai.train import config as tc
    from cai.train.online import train_online

    recipe = yaml.safe_load(RECIPE.read_text())
    judge = {"kind": "judge", "judge": {"model": recipe["models"]["judge"], "batch_size": 16},
             "constitution": recipe["constitution"], **(recipe.get("judging") or {})}  # fmt: skip
    trl = {**shared_trl(steps), "max_new_tokens": 64, "beta": [0.1]}
    cfg = load_config(tc.OnlineDPORunConfig, None, {
        "model": sft, "dataset": recipe["prompts"]["red_team"], "limit": prompts,
        "output": str(OUT / "online-dpo"), "seed": 0, "rewards": [judge], "trl": trl,
    })  # fmt: skip
    started = time.perf_counter()
    s = train_online(cfg, "online-dpo")
    return figures(
        "online-dpo",
        "online-dpo",
        started,
        s,
        trl,
        judge_labels=s.get("judge_labels"),
        judge_confidence=s.get("reward"),
    )


def train_one(name: str, sft: str, data: str, steps: int, out: Path) -> dict:
    """(In a child process.) Train one method; return its figures and peak memory."""
    from cai.config import load_config
    from cai.train import config as tc
    from cai.train.kto import train_kto
    from cai.train.preference import train_paired

    if name == "online-dpo":
        return online_dpo(sft, steps, 48)
    kind, trl = METHODS[name]
    trl = {**shared_trl(steps), **trl}
    if kind == "kto":  # one step sees as many completions as a step of pairs
        trl["per_device_train_batch_size"] *= 2
    fields = {"model": sft, "dataset": data, "output": str(out), "seed": 0, "trl": trl,
              "eval_split": "test"}  # fmt: skip
    started = time.perf_counter()
    if kind == "kto":
        summary = train_kto(load_config(tc.KTORunConfig, None, fields))
    else:
        cls = {"dpo": tc.DPORunConfig, "orpo": tc.ORPORunConfig, "simpo": tc.SimPORunConfig}
        summary = train_paired(load_config(cls[kind], None, fields), kind)
    held = ("eval_rows", "eval_accuracy", "eval_margin", "eval_loss")
    return figures(name, kind, started, summary, trl, **{k: summary.get(k) for k in held})


def iterate_recipe(rounds: int, steps: int, limit: int) -> dict:
    """The shipped recipe with ``rounds`` of sample, judge and DPO after SFT."""
    data = yaml.safe_load(RECIPE.read_text())
    data["run"] = ["revisions", "sft", "judge"]
    data["rounds"] = rounds
    data["iterate"] = {
        "method": "dpo",
        "judge": {"limit": limit, "test_size": 0, "sampling": {"max_new_tokens": 96}},
        "train": {"trl": {**shared_trl(steps), **METHODS["dpo"][1]}},
    }
    return data


def run_iterate(path: Path) -> dict:
    """(In a child process.) Run the iterative recipe; return each round's figures."""
    from cai.pipeline.plan import read_stage
    from cai.pipeline.recipe import load_recipe
    from cai.pipeline.run import run_pipeline

    recipe = load_recipe(path)
    started = time.perf_counter()
    result = run_pipeline(recipe, str(path))
    rounds = []
    for k in range(1, recipe.rounds + 1):
        j = read_stage(recipe.output / f"round{k}-judge")
        t = read_stage(recipe.output / f"round{k}-train")
        jd, td = j.get("digest", {}), t.get("digest", {})
        m = td.get("reward_margins") or {}
        rounds.append({
            "round": k, "judge_seconds": j.get("seconds"), "train_seconds": t.get("seconds"),
            "pairs": jd.get("pairs"), "mean_p_chosen": jd.get("mean_p_chosen"),
            "longer_wins": (jd.get("length_bias") or {}).get("longer_wins"),
            "first_loss": td.get("first_loss"), "last_loss": td.get("last_loss"),
            "margin_first": m.get("first"), "margin_last": m.get("last"),
            "model": str(recipe.output / f"round{k}-train"),
        })  # fmt: skip
    return {
        "ran": result["ran"],
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rounds": rounds,
    }


def child(args: list[str]) -> dict:
    """Run this script in a child process with ``args``; return the JSON it prints last."""
    cmd = [sys.executable, __file__, *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def evaluate(models: list[str], limit: int, baseline: str) -> dict:
    from cai.config import EvalConfig, load_config
    from cai.evaluate import run_evaluation

    red = str(PALMS) if PALMS.is_file() else "red-team"
    cfg = load_config(EvalConfig, None, {
        "models": models, "baseline": baseline, "prompts": [red, "helpful"], "limit": limit,
        "output": str(OUT / "evaluate"), "batch_size": 24, "mode": "likelihood",
        "sampling": {"max_new_tokens": 96, "seed": 0},
    })  # fmt: skip
    run_evaluation(cfg)
    return json.loads((OUT / "evaluate" / "metrics.json").read_text())


def table(results: dict) -> str:
    lines = ["| method | seconds | peak RSS (MB) | rows | loss first → last | "
             "reward margin first → last | held-out accuracy | held-out margin |",
             "|---|---:|---:|---:|---|---|---:|---:|"]  # fmt: skip
    for r in results["methods"]:
        lines.append(f"| {r['method']} | {r['seconds']} | {r['peak_rss_mb']} | {r['rows']} | "
                     f"{r['first_loss']:.3f} → {r['last_loss']:.3f} | "
                     f"{_m(r['margin_first'])} → {_m(r['margin_last'])} | "
                     f"{_m(r.get('eval_accuracy'))} | {_m(r.get('eval_margin'))} |")  # fmt: skip
    it = results.get("iterate")
    if it:
        lines += ["", f"Iterative DPO: {len(it['rounds'])} rounds in {it['seconds']} s, "
                  f"peak RSS {it['peak_rss_mb']} MB.", "",
                  "| round | judge s | train s | pairs | mean p_chosen | longer wins | "
                  "loss first → last | margin first → last |",
                  "|---:|---:|---:|---:|---:|---:|---|---|"]  # fmt: skip
        for r in it["rounds"]:
            lines.append(f"| {r['round']} | {r['judge_seconds']} | {r['train_seconds']} | "
                         f"{r['pairs']} | {_m(r['mean_p_chosen'])} | {_m(r['longer_wins'])} | "
                         f"{_m(r['first_loss'])} → {_m(r['last_loss'])} | "
                         f"{_m(r['margin_first'])} → {_m(r['margin_last'])} |")  # fmt: skip
    summary = OUT / "evaluate" / "summary.md"
    if summary.is_file():
        body = summary.read_text().split("\n\n")
        lines += ["", *[b for b in body if b.startswith("| model")]]
    return "\n".join(lines) + "\n"


def _m(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def main() -> None:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=16, help="training steps of every method")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--round-prompts", type=int, default=48, help="prompts judged per round")
    ap.add_argument("--limit", type=int, default=24, help="evaluation prompts per set")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--online-dpo-steps", type=int, default=0,
                    help="also online DPO from the SFT model, labelled by the recipe's judge, "
                    "for this many steps (on 48 red-team prompts)")  # fmt: skip
    ap.add_argument("--fresh", action="store_true", help="train every method again")
    ap.add_argument("--work", type=Path, default=OUT, help="where models and evaluation go")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "preference")
    ap.add_argument("--train", help=argparse.SUPPRESS)  # child: one method
    ap.add_argument("--iterate", type=Path, help=argparse.SUPPRESS)  # child: the rounds
    ap.add_argument("--sft", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args()
    OUT = a.work.resolve()
    if a.train:
        print(json.dumps(train_one(a.train, a.sft, a.data, a.steps, OUT / a.train)))
        return
    if a.iterate:
        print(json.dumps(run_iterate(a.iterate)))
        return

    unknown = [m for m in a.methods.split(",") if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    sft, data = start()
    results: dict = {"machine": machine_info("smollm2-135m"), "sft": sft, "data": data,
                     "steps": a.steps, "methods": []}  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    names = a.methods.split(",") + (["online-dpo"] if a.online_dpo_steps else [])
    for name in names:
        record = OUT / name / "bench.json"
        steps = a.online_dpo_steps if name == "online-dpo" else a.steps
        settings = {"steps": steps, "sft": sft, "data": data, "method": METHODS.get(name),
                    "eval_split": "test"}  # fmt: skip
        if not a.fresh and record.is_file():
            old = json.loads(record.read_text())
            if old.get("settings") == json.loads(json.dumps(settings)):
                print(f"[{name}] trained before with these settings; skipped")
                results["methods"].append(old["result"])
                continue
        print(f"[{name}] training", flush=True)
        r = child(["--train", name, "--sft", sft, "--data", data, "--steps", str(steps),
                   "--work", str(OUT)])  # fmt: skip
        write_json(record, {"settings": settings, "result": r})
        results["methods"].append(r)
        print(f"[{name}] {r['seconds']} s, peak {r['peak_rss_mb']} MB, loss "
              f"{r['first_loss']:.3f} -> {r['last_loss']:.3f}", flush=True)  # fmt: skip
    models = ["smollm2-135m", sft, *(str(OUT / r["method"]) for r in results["methods"])]
    if a.rounds:
        path = OUT / "iterate.yaml"
        write_text_atomic(
            path,
            yaml.safe_dump(iterate_recipe(a.rounds, a.steps, a.round_prompts), sort_keys=False),
        )
        print(f"[iterative dpo] {a.rounds} rounds ({path})", flush=True)
        it = child(["--iterate", str(path), "--work", str(OUT)])
        record = OUT / "iterate.json"  # a rerun that skipped every round keeps the timings
        if not it["ran"] and record.is_file():
            it = json.loads(record.read_text())
        else:
            write_json(record, it)
        results["iterate"] = it
        models += [r["model"] for r in results["iterate"]["rounds"]]
    started = time.perf_counter()
    results["evaluation"] = evaluate(models, a.limit, baseline=sft)
    results["evaluate_seconds"] = round(time.perf_counter() - started, 1)
    write_json(a.out.with_suffix(".json"), results)
    text = table(results)
    write_text_atomic(a.out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
