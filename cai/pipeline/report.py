"""The pipeline's report folder: one Markdown summary, read top to bottom, and the figures.

``<output>/report/`` holds ``README.md`` (stages with their wall time and tokens, the
revisions' per-principle statistics, the judge's bias figures and calibration, the
reward model and DPO/GRPO numbers, and the evaluation table of every model), the PNGs of
the evaluation and the calibration, and ``report.json`` with the same numbers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cai._util import write_json_atomic, write_text_atomic
from cai.data import markdown_table
from cai.pipeline.plan import StagePlan, read_stage
from cai.pipeline.recipe import Recipe, round_stage
from cai.pipeline.stages import round_settings
from cai.quality import report_markdown


def _f(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if v.is_integer():
            return str(int(v))
        return f"{v:.1f}" if abs(v) >= 100 else f"{v:.3f}"
    return str(v)


def _rounds(recipe: Recipe, dig: dict[str, dict]) -> list[str]:
    """One row per iterative round: its judge's statistics and its training."""
    rows = []
    for k in range(1, recipe.rounds + 1):
        j = dig.get(round_stage(k, "judge")) or {}
        t = dig.get(round_stage(k, "train")) or {}
        lb = j.get("length_bias") or {}
        m = t.get("reward_margins") or {}
        rows.append([k, round_settings(recipe, k)[0], j.get("pairs"), _f(j.get("mean_p_chosen")),
                     _f(j.get("position_consistency")), _f(lb.get("longer_wins")),
                     t.get("steps"), f"{_f(t.get('first_loss'))} → {_f(t.get('last_loss'))}",
                     f"{_f(m.get('first'))} → {_f(m.get('last'))}" if m else "–",
                     _f(t.get("eval_accuracy"))])  # fmt: skip
    if not rows:
        return []
    head = ["round", "method", "pairs judged", "mean p_chosen", "position consistency",
            "longer wins", "steps", "loss", "reward margin", "held-out accuracy"]  # fmt: skip
    return ["## Iterative rounds", "",
            "Each round samples from the previous round's policy, judges the samples and "
            "optimises; its policy's evaluation row is in the evaluation table below "
            f"(`{recipe.output}/round<k>-train`).", "", markdown_table(head, rows), ""]  # fmt: skip


def write_report(recipe: Recipe, plans: list[StagePlan]) -> Path:
    folder = recipe.output / "report"
    folder.mkdir(parents=True, exist_ok=True)
    recs = {p.name: read_stage(p.folder) for p in plans}
    dig = {name: r.get("digest", {}) for name, r in recs.items()}
    lines = [f"# CAI pipeline: {recipe.name}", "",
             f"Constitution `{recipe.constitution}`, policy `{recipe.models.policy}`, judge "
             f"`{recipe.models.judge}`, seed {recipe.seed}.", "", "## Stages", ""]  # fmt: skip
    rows = []
    for p in plans:
        d, r = dig[p.name], recs[p.name]
        tokens = d.get("generated_tokens") or d.get("trained_tokens")
        note = d.get("skipped") or ""
        rows.append([p.name, p.status, _f(r.get("seconds")), _f(tokens), f"`{p.folder}`", note])
    lines += [markdown_table(["stage", "status", "seconds", "tokens", "output", "note"], rows),
              "Tokens: generated tokens for revisions, tokens trained on for training stages.",
              ""]  # fmt: skip
    total = sum(r.get("seconds") or 0 for r in recs.values())
    lines += [f"Total wall time of the recorded stages: {total:.0f} s.", ""]

    if d := dig.get("revisions"):
        lines += ["## Revisions", "",
                  f"{d.get('rows')} rows, {d.get('generated_tokens')} generated tokens "
                  f"({_f(d.get('tokens_per_second'))} tok/s); share of critiques that found "
                  f"nothing to change: {_f(d.get('no_change_rate'))}.", ""]  # fmt: skip
        principles = d.get("principles") or []
        if principles:
            lines += [markdown_table(
                ["principle", "rounds", "no-change rate", "mean length change"],
                [[x["principle"], x["rounds"], x["no_change_rate"], x["mean_length_change"]]
                 for x in principles]), ""]  # fmt: skip
        if d.get("quality"):
            q = d["quality"]
            lines += ["### Quality of the revisions", "", report_markdown(q, q.get("kept_rows")),
                      ""]  # fmt: skip
    if d := dig.get("judge"):
        lb = d.get("length_bias") or {}
        lines += ["## AI feedback", "", markdown_table(["metric", "value"], [
            ["preference rows", d.get("rows_written")], ["pairs judged", d.get("pairs")],
            ["position consistency", _f(d.get("position_consistency"))],
            ["option shown first wins", _f(d.get("a_win_rate"))],
            ["longer response wins", _f(lb.get("longer_wins"))],
            ["mean p_chosen", _f(d.get("mean_p_chosen"))], ["abstentions", d.get("abstained")],
        ]), ""]  # fmt: skip
    if d := dig.get("calibrate"):
        if "skipped" in d:
            lines += ["## Judge calibration", "", f"Skipped: {d['skipped']}.", ""]
        else:
            ci = d.get("accuracy_ci") or [None, None]
            lb = d.get("length_balanced_accuracy_ci") or [None, None]
            how = f"Judge mode `{d.get('judge_mode')}`" + (
                f", figures {d['figures']}" if d.get("figures") else "") + ". "  # fmt: skip
            lines += ["## Judge calibration", "",
                      f"{how}Accuracy on {d.get('n')} gold pairs {_f(d.get('accuracy'))} (95% CI "
                      f"{_f(ci[0])}–{_f(ci[1])}); length-balanced accuracy "
                      f"{_f(d.get('length_balanced_accuracy'))} (95% CI "
                      f"{_f(lb[0])}–{_f(lb[1])}), against {_f(d.get('always_longer_accuracy'))} "
                      "for always picking the longer answer; position consistency "
                      f"{_f(d.get('position_consistency'))}, ECE {_f(d.get('ece'))}.", "",
                      "![reliability](calibration_reliability.png)", ""]  # fmt: skip
            src = recipe.output / "calibrate" / "reliability.png"
            if src.is_file():
                shutil.copyfile(src, folder / "calibration_reliability.png")
    lines += _rounds(recipe, dig)
    train_rows = []
    for name in [p.name for p in plans if p.name in ("sft", "reward", "dpo", "ppo", "grpo")]:
        if d := dig.get(name):
            extra = []
            if d.get("eval_accuracy") is not None:
                extra.append(f"held-out accuracy {_f(d['eval_accuracy'])} on {d['eval_rows']}")
            for k in ("reward_margins", "reward"):
                if d.get(k):
                    extra.append(f"{k} {_f(d[k]['first'])} → {_f(d[k]['last'])}")
            train_rows.append([name, d.get("steps"), _f(d.get("first_loss")),
                               _f(d.get("last_loss")), "; ".join(extra)])  # fmt: skip
    if train_rows:
        lines += ["## Training", "", markdown_table(
            ["stage", "steps", "first loss", "last loss", "other"], train_rows), ""]  # fmt: skip
    evaluation = recipe.output / "evaluate"
    if (evaluation / "summary.md").is_file():
        body = (evaluation / "summary.md").read_text().replace("# Evaluation", "## Evaluation", 1)
        lines += [body, ""]
        for png in sorted(evaluation.glob("*.png")):
            shutil.copyfile(png, folder / png.name)
            lines += [f"![{png.stem}]({png.name})", ""]
    write_text_atomic(folder / "README.md", "\n".join(lines).rstrip() + "\n")
    write_json_atomic(folder / "report.json", {"recipe": recipe.model_dump(mode="json"),
                                               "stages": recs})  # fmt: skip
    return folder
