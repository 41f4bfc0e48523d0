"""``cai evaluate``: toxicity and helpfulness of several models, before and after alignment.

1. **Responses.** Each model answers every prompt of every set ``samples`` times (seeded
   per row, so models see the same draws), or existing responses are read from a dataset.
   Generation is chunked and resumable (``responses/<model>/``) while the model's
   content identity (``cai.models.model_identity``) is unchanged: a model retrained in
   the same folder answers again.
2. **Scores** per response, every one kept (``scores.jsonl``), each from a
   ``cai.scorers.Scorer`` (``evaluation_scorers``) under its ``name``:
   - ``toxicity``: six Jigsaw labels from the offline classifier (or a named Hugging Face
     classifier); ``toxic`` is the toxicity score;
   - ``profanity``: alt-profanity-check, when installed;
   - ``relevance``: MiniLM cosine between prompt and response;
   - ``refusal``: the phrase detector of ``cai.scorers.refusal`` (or the judge);
   - ``reward/<model>``: each reward model's score;
   - ``words``: the response's length.
   A scorer that fails on one response (an empty response, say) records it as unscored,
   with the reason, in ``unscored``; it never stops the run.
3. **Win rates**: the judge compares each model's first sample with the baseline's, in both
   orders; the win rate comes with a bootstrap 95% interval.
4. **Metrics** per model (``metrics.json``): mean toxicity, the share above the threshold,
   expected maximum toxicity and toxicity probability over the K samples (on red-team
   prompts, as RealToxicityPrompts defines them), refusal rate on benign prompts,
   relevance, reward, length and win rate.

Row schema of ``scores.jsonl``::

    {"model": "smollm2-135m", "prompt_set": "red-team", "benign": false, "prompt_id": "p-…",
     "prompt": [{"role": "user", "content": "…"}], "sample": 0, "response": "…",
     "scores": {"toxic": 0.02, "toxicity": {"toxic": 0.02, …}, "profanity": 0.01,
                "relevance": 0.41, "refusal": false, "words": 57, "reward/out/reward": 1.3},
     "unscored": {}}
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

from cai import progress
from cai.config import BackendConfig, EvalConfig
from cai.data import PromptRow, content_id, read_prompts
from cai.errors import CaiError
from cai.jobs import SCHEMA_VERSION, BatchJob, output_lock, provenance

BENIGN_HINTS = ("helpful", "benign")
SCORE_CHUNK = 64
"""Responses per scorer call, and pairs per judge call: the progress bars move after each."""


def slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "model"


def load_prompt_sets(cfg: EvalConfig) -> list[tuple[str, PromptRow, bool]]:
    """(set name, row, benign) for every usable prompt of every set."""
    out = []
    for source in cfg.prompts:
        rows, rejects = read_prompts(source, limit=cfg.limit)
        if rejects:
            print(f"{source}: skipped {len(rejects)} unusable row(s)")
        name = Path(source).stem if ("/" in source or "." in source) else source
        default = any(h in name.lower() for h in BENIGN_HINTS)
        out += [(name, r, bool(r.extra.get("benign", default))) for r in rows]
    return out


def generate_responses(cfg: EvalConfig, model: str, prompts, backend=None) -> list[dict]:
    """Every sample of ``model`` for every prompt, resumable under responses/<model>/."""
    rows = [r for _, r, _ in prompts]
    meta = {r.id: (name, benign) for name, r, benign in prompts}
    if len(meta) < len(rows):
        raise CaiError("two prompt sets share a prompt id; give sets with distinct prompts")
    job = ResponsesJob(cfg, model, rows, backend)
    job.run()
    flat = []
    for row in job.result.rows:
        name, benign = meta[row["id"]]
        for k, text in enumerate(row["samples"]):
            flat.append(
                {
                    "model": model,
                    "prompt_set": name,
                    "benign": benign,
                    "prompt_id": row["id"],
                    "prompt": row["prompt"],
                    "sample": k,
                    "response": text,
                    "scores": {},
                    "unscored": {},
                }
            )
    return flat


class ResponsesJob(BatchJob):
    """One model's answers on the batch-job skeleton: ``samples`` per prompt, journaled
    under ``responses/<model>/`` (no dataset: the evaluation scores them). Each row:
    ``id``, ``prompt``, ``samples``, ``tokens`` (per sample) and ``provenance``."""

    writes_dataset = False
    chunk_size = 32
    source = None  # the prompt sets are read by the evaluation

    def __init__(self, cfg: EvalConfig, model: str, rows: list[PromptRow], backend=None) -> None:
        from cai.models import model_identity

        super().__init__(cfg, output=cfg.output / "responses" / slug(model))
        self.model, self.rows, self.backend = model, rows, backend
        self.desc = f"answers of {model}"
        self.params = cfg.sampling.params(n=cfg.samples, model=model, backend=cfg.engine.backend)
        self.run_settings = {"model": model, "model_identity": model_identity(model),
                             "sampling": self.params.to_dict(), "samples": cfg.samples}  # fmt: skip
        if cfg.engine.backend != "transformers":
            self.run_settings["engine"] = cfg.engine.backend
        self.prov = provenance(**self.run_settings)

    def read(self) -> tuple[list[PromptRow], list]:
        return self.rows, []

    def provenance(self) -> dict:
        return self.prov

    def settings(self) -> dict:
        return self.run_settings

    def process(self, chunk: list[PromptRow]) -> list[dict]:
        if self.backend is None:  # loaded by the first chunk that runs: none if all resume
            engine = self.cfg.engine.model_copy(
                update={"model": self.model, "batch_size": self.cfg.batch_size}
            )
            self.backend = engine.create()
        progress.stage("answers")
        outs = self.backend.generate([r.conversation for r in chunk], self.params)
        return [
            {
                "id": r.id,
                "prompt": r.conversation,
                "samples": [g.text.strip() for g in gens],
                "tokens": [g.num_tokens for g in gens],
                "provenance": self.prov,
            }
            for r, gens in zip(chunk, outs)
        ]


def prompt_id(row: dict, conversation: list[dict]) -> str:
    """A prompt's id, as ``read_prompts`` gives it: the row's ``id`` as text, else the
    conversation's content id (``cai.data.content_id``). A prompt gets one id whether its
    answers are generated or read from a responses dataset."""
    if row.get("id") is not None and str(row["id"]).strip():
        return str(row["id"])
    return content_id(conversation)


def read_responses(cfg: EvalConfig) -> list[dict]:
    """Existing responses: a dataset with prompt, response/completion and model columns."""
    from cai.data import read_table, to_conversation

    ds, _ = read_table(cfg.responses)
    text_col = next((c for c in ("response", "completion") if c in ds.column_names), None)
    if text_col is None or "prompt" not in ds.column_names:
        raise CaiError(
            f"{cfg.responses}: needs prompt and response (or completion) columns; it has "
            f"{', '.join(ds.column_names)}"
        )
    out, counters = [], defaultdict(int)
    for row in ds:
        conv = to_conversation(row["prompt"], "prompt")
        text = row[text_col]
        text = text[-1]["content"] if isinstance(text, list) else (text or "")
        model = row.get("model") or "responses"
        pid = prompt_id(row, conv)
        k = counters[(model, pid)]
        counters[(model, pid)] += 1
        out.append(
            {
                "model": model,
                "prompt_set": row.get("prompt_set") or "responses",
                "benign": bool(row.get("benign", False)),
                "prompt_id": pid,
                "prompt": conv,
                "sample": k,
                "response": text,
                "scores": {},
                "unscored": {},
            }
        )
    return out


# --- scoring ----------------------------------------------------------------------------------


def _apply(rows: list[dict], name: str, fn, batch_fn: bool = True) -> None:
    """Score ``rows`` with ``fn`` (a batch function over the usable rows); empty responses
    and per-row failures are recorded as unscored with a reason."""
    usable = [r for r in rows if r["response"].strip()]
    for r in rows:
        if not r["response"].strip():
            r["unscored"][name] = "empty response"
    values: list = []
    batch_error: Exception | None = None
    with progress.JobBar(total=len(usable), desc=f"scoring {name}", unit="response") as bar:
        for start in range(0, len(usable), SCORE_CHUNK):
            part = usable[start : start + SCORE_CHUNK]
            try:
                values += fn(part)
            except Exception as failure:  # retry one by one: one bad row costs only itself
                batch_error = failure
                for r in part:
                    try:
                        values.append(fn([r])[0])
                    except Exception as e:
                        values.append(None)
                        r["unscored"][name] = f"{type(e).__name__}: {e}"[:200]
            bar.update(len(part))
    if batch_error is not None and all(v is None for v in values) and usable:
        print(f"scorer {name} failed on every response: {batch_error}")
    for r, v in zip(usable, values):
        if v is not None:
            r["scores"][name] = v


def evaluation_scorers(cfg: EvalConfig, judge=None) -> list:
    """The ``cai.scorers.Scorer``s of the evaluation, in order: toxicity (the classifier
    ``cfg.toxicity`` names), profanity (when asked and installed), relevance (when asked),
    refusal (the judge's when asked and there is a judge, else the phrase detector), and a
    pointwise judge's own score of each response (``judge_pointwise``). Reward models
    (``cfg.reward_models``) come after the length, loaded one by one."""
    from cai.scorers import PhraseRefusal, profanity, toxicity_scorer

    scorers = [toxicity_scorer(cfg.toxicity)]
    if cfg.profanity and profanity.available():
        scorers.append(profanity.ProfanityScorer())
    if cfg.relevance:
        from cai.scorers import RelevanceScorer

        scorers.append(RelevanceScorer())
    if cfg.refusal_judge and judge is not None:
        from cai.judge import JudgeRefusal

        scorers.append(JudgeRefusal(judge))
    else:
        scorers.append(PhraseRefusal())
    if judge is not None and judge.mode == "pointwise":  # the judge's own per-response score
        from cai.judge import JudgeReward

        scorers.append(JudgeReward(judge))
    return scorers


def record(rows: list[dict], scorer) -> str:
    """Score ``rows`` with ``scorer`` (a ``cai.scorers.Scorer``) into ``scores[scorer.name]``:
    a ``Labelled`` scorer's every label (and its score under its ``label``), a
    ``Detector``'s flag (a boolean), else the score. Return the scorer's description."""
    from cai.scorers import Detector, Labelled

    def fn(rs: list[dict]) -> list:
        if isinstance(scorer, Labelled):
            return scorer.labels([r["response"] for r in rs])
        values = scorer([r["prompt"] for r in rs], [r["response"] for r in rs])
        if isinstance(scorer, Detector):
            return [v > scorer.flag_above for v in values]
        return values

    _apply(rows, scorer.name, fn)
    if isinstance(scorer, Labelled):
        for r in rows:
            if scorer.name in r["scores"]:
                r["scores"][scorer.label] = r["scores"][scorer.name][scorer.label]
    return scorer.description


def score_rows(cfg: EvalConfig, rows: list[dict], judge=None) -> list[str]:
    """Fill every row's ``scores``; return the descriptions of the scorers that ran."""
    ran = [record(rows, scorer) for scorer in evaluation_scorers(cfg, judge)]
    for r in rows:
        r["scores"]["words"] = len(r["response"].split())
    for name in cfg.reward_models:
        from cai.scorers import ModelReward

        ran.append(record(rows, ModelReward(name)))
    return ran


def win_rates(cfg: EvalConfig, rows: list[dict], baseline: str, judge) -> dict[str, dict]:
    """Each model's judged win rate against ``baseline`` on the first sample of each prompt."""
    from cai._util import bootstrap_ci
    from cai.judge import PairItem

    first = {(r["model"], r["prompt_id"]): r for r in rows if r["sample"] == 0}
    out: dict[str, dict] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        if model == baseline:
            continue
        items = [
            PairItem(
                f"{model}:{pid}", r["prompt"], r["response"], first[(baseline, pid)]["response"]
            )
            for (m, pid), r in first.items()
            if m == model and (baseline, pid) in first
        ]
        if not items:
            continue
        results = []
        with progress.JobBar(total=len(items), desc=f"win rate of {model}", unit="pair") as bar:
            for start in range(0, len(items), SCORE_CHUNK):
                results += judge.judge(items[start : start + SCORE_CHUNK])
                bar.update(len(items[start : start + SCORE_CHUNK]))
        wins = [1.0 if x.p_a > 0.5 else 0.5 if x.p_a == 0.5 else 0.0 for x in results]
        for item, res in zip(items, results):
            first[(model, item.id.split(":", 1)[1])]["scores"]["p_beats_baseline"] = res.p_a
        out[model] = {
            "win_rate": sum(wins) / len(wins),
            "win_rate_ci": bootstrap_ci(wins, cfg.bootstrap, cfg.sampling.seed),
            "mean_p": sum(x.p_a for x in results) / len(results),
            "pairs": len(items),
            "position_consistency": 1 - sum(x.flipped for x in results) / len(results),
        }
    return out


def judge_engine(cfg: EvalConfig) -> BackendConfig:
    """The judge's engine: ``cfg.judge``, whose transformers ``batch_size`` is the
    evaluation's unless the judge sets its own."""
    assert cfg.judge is not None
    if "batch_size" in cfg.judge.model_fields_set:
        return cfg.judge
    return cfg.judge.model_copy(update={"batch_size": cfg.batch_size})


def judge_label(cfg: EvalConfig) -> str:
    """The judge as the report names it: its model, and its engine when not transformers."""
    assert cfg.judge is not None
    engine = cfg.judge.backend
    label = cfg.judge.model if engine == "transformers" else f"{cfg.judge.model} on {engine}"
    return label if cfg.mode == "logprob" else f"{label}, {cfg.mode} mode"


def run_evaluation(cfg: EvalConfig, backends: dict | None = None) -> dict:
    """Generate (or read), score, judge, and write the report folder; return the metrics.

    ``backends`` maps a model name to a ready backend (tests and the pipeline reuse them).
    The output folder is locked for the whole run (``cai.jobs.chunks.output_lock``).
    """
    with output_lock(cfg.output):
        return _run_evaluation(cfg, backends)


def _run_evaluation(cfg: EvalConfig, backends: dict | None) -> dict:
    from cai import __version__
    from cai._util import atomic_file, write_json_atomic, write_text_atomic
    from cai.evaluate.report import all_metrics, plots, summary_markdown
    from cai.models import model_identity

    backends = backends or {}
    if cfg.responses:
        rows = read_responses(cfg)
        prompt_sets = sorted({r["prompt_set"] for r in rows})
    else:
        prompts = load_prompt_sets(cfg)
        prompt_sets = list(dict.fromkeys(name for name, _, _ in prompts))
        rows = []
        for model in cfg.models:
            rows += generate_responses(cfg, model, prompts, backends.get(model))
    models = list(dict.fromkeys(r["model"] for r in rows))
    baseline = cfg.baseline or models[0]
    if baseline not in models:
        raise CaiError(f"baseline {baseline!r} is not among the models: {', '.join(models)}")
    judge = None
    if cfg.judge is not None and (len(models) > 1 or cfg.refusal_judge):
        from cai.judge import build_judge, scoring_settings

        judge = build_judge(
            judge_engine(cfg),
            backend=backends.get(cfg.judge.model),
            constitution=cfg.constitution,
            seed=cfg.sampling.seed,
            **scoring_settings(cfg),
        )
    scorers = score_rows(cfg, rows, judge)
    wins = win_rates(cfg, rows, baseline, judge) if judge is not None else {}
    metrics = all_metrics(rows, cfg.threshold, wins)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "cai_version": __version__,
        "models": models,
        "model_identities": {} if cfg.responses else {m: model_identity(m) for m in models},
        "judge_identity": model_identity(cfg.judge.model) if judge is not None else None,
        "baseline": baseline,
        "prompt_sets": prompt_sets,
        "samples": cfg.samples,
        "threshold": cfg.threshold,
        "scorers": scorers + ([f"judge ({judge_label(cfg)})"] if judge is not None else []),
        "config": cfg.model_dump(mode="json"),
    }
    out = cfg.output
    with atomic_file(out / "scores.jsonl") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    write_json_atomic(out / "metrics.json", {"meta": meta, "models": metrics})
    write_text_atomic(out / "summary.md", summary_markdown(metrics, meta))
    plots(rows, metrics, out)
    return {"meta": meta, "models": metrics, "rows": len(rows)}
