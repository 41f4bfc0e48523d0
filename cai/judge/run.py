"""``cai judge`` as a batch job: candidates in, a preference dataset out.

Output columns (one row per prompt)::

    id, prompt (messages), chosen, rejected (one-message assistant lists),
    score_chosen, score_rejected (Bradley-Terry log-strengths), margin (their difference),
    p_chosen (the soft label: P(chosen is better)), p_chosen_by_order (per order judged),
    flipped (the orders disagreed), principles (ids), per_principle [{principle_id,
    question, p_chosen}], candidates, scores, ranking (best first), comparisons
    [{i, j, p_i, flipped}], judge_raw (CoT or generated texts), abstained, provenance

In ``pointwise`` mode only (absent in every other mode)::

    candidate_scores: one float per candidate, its own ``log P(Yes) - log P(No)`` averaged
    over every principle it was scored under in its pairs (absolute, unlike ``scores``;
    ``cai train kto --score-column candidate_scores --threshold T`` reads it)
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter

from cai import __version__, progress
from cai.backends.base import SamplingParams
from cai.config import JudgeConfig
from cai.data import (
    DatasetCard,
    PromptRow,
    Reject,
    markdown_table,
    read_prompts,
    response_text,
    split_over_budget,
    split_rows,
)
from cai.errors import CaiError
from cai.jobs import BatchJob, JobResult, provenance
from cai.judge.build import build_judge, scoring_settings
from cai.judge.pairs import expand_all_pairs, length_bias, verify_revisions
from cai.judge.pairwise import FEATURE_MODES, Judge, PairItem, PairResult
from cai.judge.ranking import all_pairs, bradley_terry, bt_probability, budgeted_pairs, ranking
from cai.models import model_identity
from cai.prompts import template_hash

_LIST_COLUMNS = ("candidates", "responses", "completions")
_PAIR_COLUMNS = (("chosen", "rejected"), ("response_a", "response_b"))


def candidates_of(row: PromptRow) -> list[str] | None:
    """The candidate responses stored in a row's other columns, if any."""
    for col in _LIST_COLUMNS:
        if isinstance(row.extra.get(col), list):
            return [t for t in (response_text(v) for v in row.extra[col]) if t is not None]
    for a, b in _PAIR_COLUMNS:
        if a in row.extra and b in row.extra:
            return [
                t
                for t in (response_text(row.extra[a]), response_text(row.extra[b]))
                if t is not None
            ]
    return None


def missing_candidates(row: PromptRow) -> str:
    """Why a row has fewer than two candidates to judge: the reason of its reject."""
    found = [c for c in _LIST_COLUMNS if c in row.extra]
    found += [f"{a}/{b}" for a, b in _PAIR_COLUMNS if a in row.extra and b in row.extra]
    if not found:
        return (
            "fewer than 2 candidates: no candidates, responses or completions list, no "
            "chosen/rejected or response_a/response_b columns (or sample with --num-candidates)"
        )
    n = len(candidates_of(row) or [])
    return (
        f"fewer than 2 candidates: {n} text response(s) in {found[0]} (each must be a string "
        "or a list of messages)"
    )


def policy_params(cfg: JudgeConfig) -> SamplingParams:
    """The policy's sampling settings, resolved for its model (the registry's defaults
    where the user set nothing); each candidate then takes its own temperature."""
    engine = cfg.policy or cfg.judge
    return cfg.sampling.params(model=engine.model, backend=engine.backend)


def candidate_temperatures(cfg: JudgeConfig) -> list[float]:
    """The sampling temperature of each of the K candidates: spread over the range."""
    k = cfg.num_candidates or 2
    lo, hi = cfg.temperature_range
    return [lo + (hi - lo) * i / max(1, k - 1) for i in range(k)]


def sample_candidates(cfg: JudgeConfig, rows: list[PromptRow], policy) -> list[list[str]]:
    """K responses per prompt from the policy, temperatures spread over the range."""
    progress.stage("candidates")
    out: list[list[str]] = [[] for _ in rows]
    for i, t in enumerate(candidate_temperatures(cfg)):
        params = policy_params(cfg)
        params = SamplingParams(**{**params.to_dict(), "temperature": t, "seed": params.seed + i})
        for j, gens in enumerate(policy.generate([r.conversation for r in rows], params)):
            out[j].append(gens[0].text.strip())
    return out


def candidate_scores(
    k: int, judged: list[tuple[int, int, PairResult]]
) -> list[float | None] | None:
    """Each candidate's own pointwise score, the mean over all its scorings (a pair's
    ``scores_ab`` is the mean over its principles, so it weighs by their number); None when
    the judge kept no per-response scores (every mode but ``pointwise``)."""
    if not judged or any(r.scores_ab is None for _, _, r in judged):
        return None
    total, count = [0.0] * k, [0] * k
    for i, j, r in judged:
        n = max(len(r.principles), 1)
        for c, s in zip((i, j), r.scores_ab):
            total[c] += n * s
            count[c] += n
    return [t / c if c else None for t, c in zip(total, count)]


def preference_row(
    row: PromptRow, cands: list[str], judged: list[tuple[int, int, PairResult]], provenance: dict
) -> dict:
    """Aggregate a prompt's judged pairs into one preference row."""
    k = len(cands)
    if k == 2:
        p = min(max(judged[0][2].p_a, 1e-6), 1 - 1e-6)
        half = math.log(p / (1 - p)) / 2
        scores = [half, -half]
    else:
        scores = bradley_terry(k, [(i, j, r.p_a) for i, j, r in judged])
    order = ranking(scores)
    best, worst = order[0], order[-1]
    direct = next(((i, j, r) for i, j, r in judged if {i, j} == {best, worst}), None)
    if direct is not None:
        i, _, r = direct
        flip = i != best  # r.p_a is P(i better); chosen is `best`
        p_chosen = 1 - r.p_a if flip else r.p_a
        by_order = [None if o["p_a"] is None else (1 - o["p_a"] if flip else o["p_a"])
                    for o in r.orders]  # fmt: skip
        per_principle = [
            {
                **pp,
                "p_chosen": None if pp["p_a"] is None else (1 - pp["p_a"] if flip else pp["p_a"]),
            }
            for pp in r.principles
        ]
        flipped, raws = r.flipped, [o["raw"] for o in r.orders]
    else:
        p_chosen, by_order, per_principle, flipped, raws = (
            bt_probability(scores[best], scores[worst]),
            [],
            [],
            False,
            [],
        )
    for pp in per_principle:
        pp.pop("p_a", None)
    own = candidate_scores(k, judged)
    return {
        "id": row.id,
        "prompt": row.conversation,
        "chosen": [{"role": "assistant", "content": cands[best]}],
        "rejected": [{"role": "assistant", "content": cands[worst]}],
        "score_chosen": scores[best],
        "score_rejected": scores[worst],
        "margin": scores[best] - scores[worst],
        "p_chosen": p_chosen,
        "p_chosen_by_order": by_order,
        "flipped": flipped,
        "principles": [pp["principle_id"] for pp in per_principle],
        "per_principle": per_principle,
        "candidates": cands,
        "scores": scores,
        "ranking": order,
        "comparisons": [
            {
                "i": i,
                "j": j,
                "p_i": r.p_a,
                "flipped": r.flipped,
                # P(the option shown first won), per single-order judgment: position bias.
                "p_first": [
                    None if o["p_a"] is None else (o["p_a"] if o["order"] == "ab" else 1 - o["p_a"])
                    for o in r.orders
                ],
            }
            for i, j, r in judged
        ],
        "judge_raw": raws,
        "abstained": sum(r.abstained for _, _, r in judged),
        "provenance": provenance,
        **({"candidate_scores": own} if own is not None else {}),
    }


class JudgeJob:
    """Judges chunks of rows: candidates, pairs, one batched judge pass, aggregation."""

    def __init__(self, cfg: JudgeConfig, judge: Judge, policy=None) -> None:
        self.cfg, self.judge, self.policy = cfg, judge, policy
        c = judge.constitution
        self.provenance = provenance(
            judge_model=judge.backend.model_name,
            judge_model_identity=model_identity(judge.backend.model_name),
            judge_backend=judge.backend.name,
            policy_model=policy.model_name if policy is not None else None,
            policy_model_identity=model_identity(policy.model_name) if policy else None,
            policy_sampling=policy_params(cfg).to_dict() if policy is not None else None,
            candidate_temperatures=candidate_temperatures(cfg) if policy is not None else None,
            mode=judge.mode,
            scoring=judge.scoring(),
            both_orders=judge.both_orders,
            principles=str(judge.principles),
            cot_clamp=list(judge.cot_clamp) if judge.cot_clamp else None,
            seed=judge.seed,
            constitution={"name": c.name, "version": str(c.version), "hash": c.content_hash},
            templates={t: template_hash(t, judge.prompts_dir) for t in judge.templates()},
        )

    def pairs(self, row: PromptRow, k: int) -> list[tuple[int, int]]:
        if k == 2 or self.cfg.pair_budget is None:
            return all_pairs(k)
        rng = random.Random(f"{self.judge.seed}:{row.id}")
        return budgeted_pairs(k, self.cfg.pair_budget, rng)

    def __call__(self, rows: list[PromptRow]) -> list[dict]:
        cands = (
            sample_candidates(self.cfg, rows, self.policy)
            if self.policy is not None
            else [candidates_of(r) or [] for r in rows]
        )
        items, where = [], []
        for n, (row, cs) in enumerate(zip(rows, cands)):
            for i, j in self.pairs(row, len(cs)):
                items.append(PairItem(f"{row.id}:{i}-{j}", row.conversation, cs[i], cs[j]))
                where.append((n, i, j))
        results = self.judge.judge(items)
        judged: list[list] = [[] for _ in rows]
        for (n, i, j), r in zip(where, results):
            judged[n].append((i, j, r))
        out = [preference_row(r, c, jd, self.provenance) for r, c, jd in zip(rows, cands, judged)]
        for pref, row in zip(out, rows):
            if (
                "principle_ids" in row.extra
            ):  # a generate-revisions row: candidate 0 is the revision
                pref["revision_principles"] = row.extra["principle_ids"]
        return out


def check_context(job: JudgeJob, rows: list[PromptRow]) -> tuple[list[PromptRow], list[Reject]]:
    """Reject rows whose judge prompt cannot fit the judge model's context.

    Every prompt a row will be judged with (each pair and question, both candidates
    rendered into the template) must leave room for the answer: the option scores, plus
    the reasoning in CoT mode. With sampled candidates each is budgeted at the policy's
    ``max_new_tokens``. Backends that do not report a context length skip the check.
    """
    judge = job.judge
    limit = getattr(judge.backend, "context_length", None)
    count = getattr(judge.backend, "count_tokens", None)
    if not limit or count is None or not rows:
        return rows, []
    room = 32 + (judge.params.max_new_tokens if judge.mode == "cot" else 0)
    sampled = 2 * job.cfg.sampling.max_new_tokens if job.policy is not None else 0
    template = "compare_cot" if judge.mode == "cot" else "compare"
    convs, owners = [], []
    for n, row in enumerate(rows):
        cands = candidates_of(row) if job.policy is None else None
        cands = cands or [""] * (job.cfg.num_candidates or 2)
        for i, j in job.pairs(row, len(cands)):
            item = PairItem(f"{row.id}:{i}-{j}", row.conversation, cands[i], cands[j])
            for _, question in judge.questions(item.id):
                text = judge._prompt(item, question, item.a, item.b, template)
                convs.append([{"role": "user", "content": text}])
                owners.append(n)
    longest = [0] * len(rows)
    for n, size in zip(owners, count(convs)):
        longest[n] = max(longest[n], size + sampled)
    budget = limit - room
    return split_over_budget(
        rows,
        longest,
        budget,
        lambda n: (
            f"the judge prompt needs {n} tokens > {budget} available "
            f"({limit} - room for the answer)"
        ),
    )


def run_judge(cfg: JudgeConfig, judge_backend=None, policy_backend=None) -> dict:
    """Run the whole job (``cai.jobs.BatchJob``); return the summary that is also stored
    in ``run.json``.

    Before any model loads: the output must be a folder that does not overlap the input,
    an unfinished cai input is refused (unless ``allow_partial``), and the output folder
    is locked against a second run for the whole job."""
    return PreferencesJob(cfg, judge_backend, policy_backend).run()


class PreferencesJob(BatchJob):
    """``cai judge``'s own parts of the batch job: candidates, the judge, its summary."""

    desc = "judging"

    def __init__(self, cfg: JudgeConfig, judge_backend=None, policy_backend=None) -> None:
        super().__init__(cfg)
        self.judge_backend = judge_backend
        self.policy = policy_backend
        self.job: JudgeJob | None = None

    def read(self) -> tuple[list[PromptRow], list[Reject]]:
        cfg = self.cfg
        return read_prompts(
            cfg.prompts, split=cfg.split, prompt_column=cfg.prompt_column, limit=cfg.limit
        )

    def screen(self, rows: list[PromptRow]) -> tuple[list[PromptRow], list[Reject]]:
        """Rows with two candidates to judge, unless the policy samples them."""
        cfg = self.cfg
        if cfg.num_candidates and self.policy is None:
            self.policy = (cfg.policy or cfg.judge).create()
        if self.policy is not None:
            return rows, []
        keep, rejects = [], []
        for r in rows:
            if len(candidates_of(r) or []) >= 2:
                keep.append(r)
            else:
                rejects.append(Reject(r.index, r.id, missing_candidates(r), _raw(r)))
        return keep, rejects

    def prepare(self, rows: list[PromptRow]) -> tuple[list[PromptRow], list[Reject]]:
        cfg = self.cfg
        if cfg.verify_revisions is not None:
            plain = [
                r.id for r in rows if "revision" not in r.extra or "principle_ids" not in r.extra
            ]
            if plain or cfg.num_candidates:
                raise CaiError(
                    "--verify-revisions needs a generate-revisions output as --prompts (rows with "
                    f"revision and principle_ids; {len(plain)} rows lack them) and no "
                    "--num-candidates"
                )
        judge = build_judge(
            cfg.judge,
            backend=self.judge_backend,
            constitution=cfg.constitution,
            both_orders=cfg.both_orders,
            principles=cfg.principles,
            seed=cfg.sampling.seed,
            cot_clamp=cfg.cot_clamp,
            max_new_tokens=cfg.judge_max_new_tokens,
            prompts_dir=cfg.prompts_dir,
            **scoring_settings(cfg),
        )
        self.job = JudgeJob(cfg, judge, self.policy)
        return check_context(self.job, rows)

    def provenance(self) -> dict:
        return self.job.provenance

    def process(self, chunk: list[PromptRow]) -> list[dict]:
        return self.job(chunk)

    def summary(self, result: JobResult, rejects: list[Reject]) -> dict:
        return {
            **super().summary(result, rejects),
            **judge_summary(result.rows, self.job.judge, result.seconds, rejects),
        }

    def splits(self, rows: list[dict], summary: dict) -> dict[str, list[dict]]:
        cfg = self.cfg
        if cfg.verify_revisions is not None:
            rows, summary["verified"] = verify_revisions(rows, cfg.verify_revisions)
        splits = split_rows(rows, test_size=cfg.test_size, seed=cfg.sampling.seed)
        if cfg.emit_pairs == "all":  # after the split, so a prompt's pairs stay in one split
            splits = {name: expand_all_pairs(part) for name, part in splits.items()}
        summary["rows_written"] = sum(len(part) for part in splits.values())
        return splits

    def card(self, summary: dict) -> DatasetCard:
        return judge_card(self.cfg, self.job, summary)


def _raw(row: PromptRow) -> str:
    """A short view of a rejected row: its id, conversation and other columns."""
    text = json.dumps({"conversation": row.conversation, **row.extra}, default=str)
    return text if len(text) <= 500 else text[:499] + "…"


def judge_summary(rows: list[dict], judge: Judge, seconds: float, rejects: list[Reject]) -> dict:
    """Position consistency, how often "A" wins (both None for a mode with no order),
    abstentions, per-principle statistics."""
    comps = [c for r in rows for c in r["comparisons"]]
    firsts = [p for c in comps for p in c["p_first"] if p is not None]
    per_principle = Counter(p for r in rows for p in r["principles"])
    pairs = len(comps)
    if judge.mode in FEATURE_MODES:  # one response at a time: no order to be biased by
        comps, firsts = [], []
    return {
        "rows": len(rows),
        "pairs": pairs,
        "rejected_rows": len(rejects),
        "seconds": round(seconds, 2),
        "pairs_per_second": round(pairs / seconds, 3) if seconds else 0.0,
        "position_consistency": round(1 - sum(c["flipped"] for c in comps) / len(comps), 4)
        if comps
        else None,
        "a_win_rate": round(sum(p > 0.5 for p in firsts) / len(firsts), 4) if firsts else None,
        "mean_p_chosen": round(sum(r["p_chosen"] for r in rows) / len(rows), 4) if rows else None,
        "abstained": sum(r["abstained"] for r in rows),
        "length_bias": length_bias(rows),
        "fallbacks": judge.stats["fallbacks"],
        "principle_use": dict(per_principle),
    }


def _verified_section(s: dict) -> dict[str, str]:
    v = s.get("verified")
    if not v:
        return {}
    table = markdown_table(
        ["principle", "rows", "kept", "share kept"],
        [[pid, x["rows"], x["kept"], x["kept_share"]] for pid, x in v["per_principle"].items()],
    )
    head = (
        f"Kept {v['kept']} of {v['rows']} revisions ({v['kept_share']}) that the judge "
        f"prefers to the initial answer with p >= {v['threshold']}."
    )
    return {"Verified revisions": f"{head}\n\n{table}"}


def judge_card(cfg: JudgeConfig, job: JudgeJob, s: dict) -> DatasetCard:
    prov = job.provenance
    return DatasetCard(
        title=(
            f"AI-feedback preferences: {prov['constitution']['name']}, judge {prov['judge_model']}"
        ),
        summary=(
            f"Preference pairs labelled by `cai judge` (cai {__version__}): the judge "
            f"`{prov['judge_model']}` compared candidate responses against the "
            f"`{prov['constitution']['name']}` constitution in {prov['mode']} mode"
            f"{', both answer orders averaged' if prov['both_orders'] else ''}. `p_chosen` is "
            "the soft label; `chosen`/`rejected` with `prompt` feed trl's RewardTrainer and "
            "DPOTrainer; `margin` is the Bradley-Terry score difference."
            + (
                " `candidate_scores` is each candidate's own pointwise score, "
                "log P(Yes) - log P(No), averaged over the principles it was scored under "
                "(for `cai train kto --score-column candidate_scores --threshold T`)."
                if prov["mode"] == "pointwise"
                else ""
            )
        ),
        sections={
            "Judge": markdown_table(
                ["setting", "value"], [[k, v] for k, v in prov.items() if k not in ("templates",)]
            ),
            "Position bias and abstentions": markdown_table(
                ["metric", "value"],
                [
                    [
                        "position consistency (same verdict in both orders)",
                        s["position_consistency"],
                    ],
                    ["share of judgments won by the option shown first", s["a_win_rate"]],
                    ["mean p_chosen", s["mean_p_chosen"]],
                    ["abstentions (unparseable answers)", s["abstained"]],
                    [
                        "share of unequal-length pairs won by the longer response",
                        s["length_bias"]["longer_wins"],
                    ],
                    ["fallbacks to generated answers", s["fallbacks"]],
                ],
            ),
            "Per-principle use": markdown_table(
                ["principle", "pairs"], sorted(s["principle_use"].items())
            ),
            **_verified_section(s),
            "Throughput": (
                f"{s['pairs']} pairs in {s['seconds']} s ({s['pairs_per_second']} pairs/s)."
            ),
            "Skipped rows": f"{s['rejected_rows']} rows skipped; see `rejects.jsonl`.",
        },
        tags=["constitutional-ai", "rlaif", "cai", "preferences", "ai-feedback"],
        extra_yaml={
            "cai": {
                "judge_model": prov["judge_model"],
                "constitution_hash": prov["constitution"]["hash"],
            }
        },
    )
