"""AI feedback: a judge model compares responses against the constitution (RLAIF).

Pairwise multiple choice, as in the CAI paper: the judge sees the conversation, a
comparison question and the options (A) and (B). Its preference is read from the
backend's option scores: the normalised probability of the continuations " (A)" and
" (B)" after an open answer ("The answer is:"), a soft label rather than a parsed
string. With the transformers backend this is a forward pass; ``generate`` is not called.

- **Both orders** (default): each pair is judged as (a, b) and as (b, a) and the two
  probabilities are averaged; each order's probability and whether the verdict flipped
  are kept.
- **Principles**: one comparison question per pair, sampled per row from the run's seed,
  or an ensemble of several (``principles=N`` or ``"all"``), averaged.
- **Chain of thought** (``mode="cot"``): the judge writes its reasoning first, then the
  option probabilities are read after "So the answer is". The final soft label is clamped
  to [0.4, 0.6] by default, as in the paper.
- **Generate** (``mode="generate"``): for backends that cannot score options, the answer is
  parsed from generated text with a strict parser; an unparseable answer is an
  abstention (p = 0.5) with its raw text kept, never a crash.
- **Debiased** (``mode="debiased"``): ``logprob`` with contextual calibration (Zhao et al.
  2021). The judge's prior for (A) is read from the same prompt with both responses
  replaced by "N/A", and divided out: ``P(A) = sigmoid(logit P(A) - logit P_prior(A))``.

Modes that a small model can answer, scoring one response at a time (``cai.judge.lmscore``;
no position, so one "order" per principle):

- **Contrast** (``mode="contrast"``): ``p_a = sigmoid(scale * contrast)``, where contrast is
  how much more likely a is than b under the principle-following persona relative to the
  violating one (``contrast_norm``: per character, ``mean``, or summed, ``sum``).
- **Likelihood** (``mode="likelihood"``): ``p_a = sigmoid(scale * (l_a - l_b))`` with ``l``
  the response's log-likelihood per character under the principle-following persona
  alone (one pass per response).
- **Pointwise** (``mode="pointwise"``): ``p_a = sigmoid(scale * (s_a - s_b))`` with
  ``s = log P(Yes) - log P(No)`` after the principle's yes/no question about one response.
  Each response's own ``s`` is kept too (``PairResult.scores_ab``).
- **Ensemble** (``mode="ensemble"``): ``p_a = sigmoid(sum_f w_f * feature_f)`` with weights
  fitted by ``cai judge calibrate`` and read from a JSON file (``cai.judge.ensemble``).
  Several principles' logits are averaged.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from cai import progress
from cai.backends.base import Backend, Conversation, SamplingParams
from cai.constitution import Constitution, comparison_question, row_rng
from cai.judge.lmscore import CONTRAST, LM_FEATURES, lm_scores
from cai.prompts import render, template_data

ANSWER_PREFIX = "The answer is:"
COT_ANSWER = "So the answer is"
OPTIONS = (" (A)", " (B)")
CONTENT_FREE = "N/A"
"""What replaces both responses when the debiased mode reads the judge's prior for (A)."""
ORDERED_MODES = ("logprob", "debiased", "cot", "generate")
"""Modes that show both responses in one prompt: the order matters and both are judged."""
FEATURE_MODES = ("contrast", "likelihood", "pointwise", "ensemble")
"""Modes that score one response at a time: no order."""
MODES = ORDERED_MODES + FEATURE_MODES
DEFAULT_SCALE = {
    "contrast_sum": 1.0,
    "contrast_mean": 1.0,
    "likelihood_mean": 1.0,
    "pointwise": 1.0,
}
"""The logistic scale of each single-feature mode's soft label, ``sigmoid(scale * x)``. A
fitted scale (``cai judge calibrate`` writes one per feature) is used through ``ensemble``."""
_CLIP = 1e-6
_STRICT = re.compile(r"^\W*(?:the answer is:?\s*)?\(?([AB])\)?(?:\W|$)", re.IGNORECASE)


def parse_choice(text: str) -> str | None:
    """'A' or 'B' from a generated answer like "(A)", "B.", "The answer is (A)"; else None.

    Strict: "the answer is (X)" must name one letter, or the text must open with a letter
    and name no other option; anything else is unparseable.
    """
    stated = {m.upper() for m in re.findall(r"answer is:?\s*\(?([AB])\b", text, re.IGNORECASE)}
    if stated:
        return stated.pop() if len(stated) == 1 else None
    m = _STRICT.match(text.strip())
    if m is None:
        return None
    letter = m.group(1).upper()
    other = "B" if letter == "A" else "A"
    return None if re.search(rf"\({other}\)", text) else letter


def softmax2(a: float, b: float) -> float:
    """P(first) from two log-probabilities."""
    m = max(a, b)
    ea, eb = math.exp(a - m), math.exp(b - m)
    return ea / (ea + eb)


def mode_features(mode: str, contrast_norm: str = "mean", ensemble: Any = None) -> tuple[str, ...]:
    """The pair features a judge mode reads: its own one, or the ensemble's; none for the
    modes that show both responses (their verdict is not a feature)."""
    if mode == "ensemble":
        if ensemble is None:
            raise ValueError("the ensemble mode needs fitted weights (judge `ensemble: FILE`)")
        return tuple(ensemble.features)
    if mode == "contrast":
        if contrast_norm not in ("mean", "sum"):
            raise ValueError(f"contrast_norm must be mean or sum, not {contrast_norm!r}")
        return (f"contrast_{contrast_norm}",)
    return {"likelihood": ("likelihood_mean",), "pointwise": ("pointwise",)}.get(mode, ())


def sigmoid(x: float) -> float:
    """The logistic function, safe for any finite ``x``."""
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def logit(p: float) -> float:
    """log(p / (1 - p)), with p clipped to [1e-6, 1 - 1e-6]."""
    p = min(max(p, _CLIP), 1.0 - _CLIP)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class PairItem:
    """One comparison: the conversation (up to the last user turn) and two responses."""

    id: str
    conversation: Conversation
    a: str
    b: str


@dataclass
class PairResult:
    """The judge's verdict on one pair. ``p_a`` is P(a is better), the soft label."""

    id: str
    p_a: float
    p_a_raw: float
    """Before any CoT clamp."""
    orders: list[dict]
    """Per order: ``{"order": "ab"|"ba", "principle_id", "p_a", "raw"}``."""
    principles: list[dict]
    """Per principle: ``{"principle_id", "question", "p_a"}`` averaged over orders."""
    flipped: bool
    """The verdicts of the two orders disagree (position bias)."""
    abstained: int = 0
    fallbacks: int = 0
    scores_ab: tuple[float, float] | None = None
    """Pointwise mode: each response's own score ``(s_a, s_b)``, ``log P(Yes) - log P(No)``,
    averaged over the pair's principles (``p_a`` comes from their difference); else None."""


@dataclass
class Judge:
    """Compares pairs of responses with a judge backend. One instance per run, made by
    ``cai.judge.build_judge`` (on any engine) everywhere outside tests."""

    backend: Backend
    constitution: Constitution
    mode: str = "logprob"
    """One of ``MODES``: ``logprob`` (option scores), ``debiased``, ``cot`` (reason, then
    option scores), ``generate``, ``contrast``, ``pointwise`` or ``ensemble``."""
    both_orders: bool = True
    principles: int | str = 1
    """How many comparison questions per pair: a number, or ``all``."""
    seed: int = 0
    cot_clamp: tuple[float, float] | None = (0.4, 0.6)
    params: SamplingParams = field(
        default_factory=lambda: SamplingParams(max_new_tokens=256, temperature=0.0)
    )
    """Generation settings for CoT reasoning and generate mode."""
    prompts_dir: str | None = None
    contrast_norm: str = "mean"
    """Contrast mode: the log-ratio per character (``mean``) or summed (``sum``)."""
    scale: float | None = None
    """Contrast and pointwise modes: the soft label's scale; None takes ``DEFAULT_SCALE``."""
    ensemble: Any = None
    """Ensemble mode: the fitted ``cai.judge.ensemble.Ensemble``."""
    stats: dict = field(default_factory=lambda: {"pairs": 0, "fallbacks": 0, "abstained": 0})

    def questions(self, item_id: str) -> list[tuple[str, str]]:
        """(principle id, question) pairs for one item; seeded by the run's seed and id."""
        rng = row_rng(self.seed, f"judge:{item_id}")
        ps = list(self.constitution.principles)
        if self.principles != "all":
            n = min(int(self.principles), len(ps))
            weights = [p.weight for p in ps]
            chosen: list = []
            while len(chosen) < n:
                p = rng.choices(ps, weights=weights, k=1)[0]
                if p not in chosen:
                    chosen.append(p)
            ps = chosen
        return [(p.id, comparison_question(self.constitution, p, rng)) for p in ps]

    def _prompt(self, item: PairItem, question: str, x: str, y: str, template: str) -> str:
        return render(
            template,
            self.prompts_dir,
            conversation=item.conversation,
            question=question,
            options=[x, y],
            labels=["A", "B"],
            constitution=self._template_constitution(),
        )

    def _template_constitution(self) -> dict:
        """The constitution as plain template data, made once per judge."""
        if getattr(self, "_constitution_data", None) is None:
            self._constitution_data = template_data(self.constitution)
        return self._constitution_data

    def judge(self, items: list[PairItem]) -> list[PairResult]:
        """Judge every pair: one batched backend call per step for all pairs and orders."""
        if self.mode not in MODES:
            raise ValueError(f"unknown judge mode {self.mode!r}; known: {', '.join(MODES)}")
        if self.mode in FEATURE_MODES:
            by_item = self._feature_rows(items)
        else:
            by_item = self._order_rows(items, self.mode)
        results = [self._combine(item, rows) for item, rows in zip(items, by_item)]
        self.stats["pairs"] += len(items)
        return results

    def scoring(self) -> dict:
        """The judge's scoring settings as they apply, for provenance: the mode, and the
        contrast norm, the scale or the fitted weights (with their sha256) where used."""
        out: dict = {"mode": self.mode}
        if self.mode in ("contrast", "likelihood", "pointwise"):
            out["scale"] = self.score_scale()
            if self.mode == "contrast":
                out["contrast_norm"] = self.contrast_norm
        if self.mode == "ensemble":
            e = self.ensemble
            out["ensemble"] = {"sha256": e.sha256, "features": list(e.features),
                               "weights": list(e.weights), "meta": e.meta}  # fmt: skip
        return out

    def templates(self) -> tuple[str, ...]:
        """The templates this judge's mode renders."""
        names = set(self.feature_names()) if self.mode in FEATURE_MODES else {self.mode}
        out = []
        if names & {"logprob", "debiased", "generate"}:
            out.append("compare")
        if "cot" in names:
            out.append("compare_cot")
        if names & set(CONTRAST):
            out.append("persona")
        if "pointwise" in names:
            out.append("pointwise")
        return tuple(out)

    def feature_names(self) -> tuple[str, ...]:
        """The pair features this judge's mode combines (see ``cai.judge.lmscore``)."""
        return mode_features(self.mode, self.contrast_norm, self.ensemble)

    def score_scale(self) -> float:
        """A single-score mode's scale: the one given, else its ``DEFAULT_SCALE``."""
        (name,) = self.feature_names()
        return DEFAULT_SCALE[name] if self.scale is None else self.scale

    def _logit_of(self, features: dict[str, float]) -> float:
        if self.mode == "ensemble":
            return self.ensemble.logit([features])[0]
        (name,) = self.feature_names()
        return self.score_scale() * features[name]

    def _feature_rows(self, items: list[PairItem]) -> list[list[dict]]:
        """One row per item and principle: the features and ``p_a`` of the mode's logit."""
        by_item: list[list[dict]] = [[] for _ in items]
        keys, rows, _, singles = self._features(items, self.feature_names())
        for n, ((i, pid), feats) in enumerate(zip(keys, rows)):
            p_a = sigmoid(self._logit_of(feats))
            row = {"order": "ab", "principle_id": pid, "p_a": p_a, "raw": "", "features": feats}
            if self.mode == "pointwise":  # the responses' own scores, from the same pass
                row["scores_ab"] = singles[n]
            by_item[i].append(row)
        return by_item

    def features(
        self, items: list[PairItem], names: tuple[str, ...] | list[str]
    ) -> tuple[list[tuple[int, str]], list[dict[str, float]], list[list[dict]] | None]:
        """The pair features ``names`` (``cai.judge.lmscore.LM_FEATURES``, plus ``logprob``
        and ``debiased``: the mean over orders of ``logit P(a)``) for every item and sampled
        principle: the (item index, principle id) keys, one dict of features per key, and
        the per-order rows of the ordered pass (None if no ordered feature was asked for)."""
        return self._features(items, names)[:3]

    def _features(self, items: list[PairItem], names: tuple[str, ...] | list[str]) -> tuple:
        """``features``, plus the per-response pointwise scores ``(s_a, s_b)`` per key from
        the same pass (``cai.judge.lmscore.lm_scores``; None without ``pointwise``)."""
        missing = set(names) - set(LM_FEATURES) - {"logprob", "debiased"}
        if missing:
            raise ValueError(f"unknown judge features: {sorted(missing)}")
        keys, jobs = [], []
        for i, item in enumerate(items):
            for pid, _q in self.questions(item.id):
                keys.append((i, pid))
                principle = self.constitution.principle(pid)
                jobs.append((item.conversation, item.a, item.b, principle))
        lm = [n for n in names if n in LM_FEATURES]
        rows, singles = lm_scores(self.backend, self.constitution, jobs, lm, self.prompts_dir)
        wanted = [m for m in ("logprob", "debiased") if m in names]
        by_item = None
        if wanted:  # one pass serves both: debiased rows keep the plain P(a) too
            by_item = self._order_rows(items, wanted[-1])
            for (i, pid), row in zip(keys, rows):
                mine = [r for r in by_item[i] if r["principle_id"] == pid]
                for mode in wanted:
                    key = "p_a_logprob" if mode == "logprob" and wanted[-1] == "debiased" else "p_a"
                    logits = [logit(r[key]) for r in mine]
                    row[mode] = sum(logits) / len(logits)
        return keys, rows, by_item, singles

    def _order_rows(self, items: list[PairItem], mode: str) -> list[list[dict]]:
        """One row per item, principle and order: P(a) in the ordered ``mode``."""
        jobs = []  # (item index, principle id, question, order)
        for i, item in enumerate(items):
            for pid, q in self.questions(item.id):
                for order in ("ab", "ba") if self.both_orders else ("ab",):
                    jobs.append((i, pid, q, order))
        template = "compare_cot" if mode == "cot" else "compare"
        convs = []
        for i, _, q, order in jobs:
            it = items[i]
            x, y = (it.a, it.b) if order == "ab" else (it.b, it.a)
            convs.append([{"role": "user", "content": self._prompt(it, q, x, y, template)}])
        p_first, raws, abstained = self._p_first(convs, mode)
        plain = p_first
        if mode == "debiased":
            p_first = self._debias(items, jobs, p_first)
        by_item: list[list[dict]] = [[] for _ in items]
        for (i, pid, _q, order), p, p0, raw in zip(jobs, p_first, plain, raws):
            p_a = p if order == "ab" or p is None else 1.0 - p
            row = {"order": order, "principle_id": pid, "p_a": p_a, "raw": raw}
            if mode == "debiased":  # the plain logprob verdict, from the same pass
                row["p_a_logprob"] = p0 if order == "ab" else 1.0 - p0
            by_item[i].append(row)
        self.stats["abstained"] += abstained
        if mode == "generate":
            self.stats["fallbacks"] += len(jobs)
        return by_item

    def _debias(self, items: list[PairItem], jobs: list, p_first: list) -> list[float]:
        """Contextual calibration: divide out the prior P(A) of the same prompt with both
        responses replaced by ``CONTENT_FREE`` (one prior per item and question)."""
        keys = list(dict.fromkeys((i, q) for i, _, q, _ in jobs))
        free = [
            [{"role": "user", "content": self._prompt(items[i], q, *[CONTENT_FREE] * 2, "compare")}]
            for i, q in keys
        ]
        progress.stage("prior")
        start = time.perf_counter()
        prior = dict(zip(keys, self._p_first(free, "logprob")[0]))
        self.stats["prior_seconds"] = self.stats.get("prior_seconds", 0.0) + (
            time.perf_counter() - start
        )
        return [sigmoid(logit(p) - logit(prior[(i, q)])) for (i, _, q, _), p in zip(jobs, p_first)]

    def _p_first(
        self, convs: list[Conversation], mode: str | None = None
    ) -> tuple[list[float | None], list[str], int]:
        """P(option shown first is better) per conversation, with any raw text."""
        mode = mode or self.mode
        if mode == "generate":
            params = SamplingParams(**{**self.params.to_dict(), "max_new_tokens": 16, "n": 1})
            progress.stage("verdicts")
            outs = self.backend.generate(convs, params)
            raws = [o[0].text for o in outs]
            choice = [parse_choice(t) for t in raws]
            probs = [None if c is None else (1.0 if c == "A" else 0.0) for c in choice]
            return probs, raws, sum(c is None for c in choice)
        raws = ["" for _ in convs]
        prefix = ANSWER_PREFIX
        if mode == "cot":
            params = SamplingParams(**{**self.params.to_dict(), "stop": (COT_ANSWER,), "n": 1})
            progress.stage("reasoning")
            raws = [o[0].text for o in self.backend.generate(convs, params)]
        scored = [
            c
            + [
                {
                    "role": "assistant",
                    "content": (r.strip() + "\n" + COT_ANSWER) if mode == "cot" else prefix,
                }
            ]
            for c, r in zip(convs, raws)
        ]
        progress.stage("scoring")
        scores = self.backend.score_options(scored, list(OPTIONS))
        return [softmax2(a, b) for a, b in scores], raws, 0

    def _combine(self, item: PairItem, rows: list[dict]) -> PairResult:
        known = [r["p_a"] for r in rows if r["p_a"] is not None]
        p_raw = sum(known) / len(known) if known else 0.5
        if self.mode == "ensemble" and rows:  # the principles' logits are averaged, not p
            p_raw = sigmoid(sum(self._logit_of(r["features"]) for r in rows) / len(rows))
        p = p_raw
        if self.mode == "cot" and self.cot_clamp is not None:
            lo, hi = self.cot_clamp
            p = min(max(p, lo), hi)
        per_principle = []
        for pid in dict.fromkeys(r["principle_id"] for r in rows):
            ps = [r["p_a"] for r in rows if r["principle_id"] == pid and r["p_a"] is not None]
            q = next(q for qpid, q in self.questions(item.id) if qpid == pid)
            per_principle.append(
                {"principle_id": pid, "question": q, "p_a": sum(ps) / len(ps) if ps else None}
            )
        flipped = False
        for pid in {r["principle_id"] for r in rows}:
            verdicts = {
                r["p_a"] > 0.5 for r in rows if r["principle_id"] == pid and r["p_a"] is not None
            }
            flipped = flipped or len(verdicts) > 1
        own = [r["scores_ab"] for r in rows if "scores_ab" in r]
        scores_ab = (
            (sum(a for a, _ in own) / len(own), sum(b for _, b in own) / len(own)) if own else None
        )
        return PairResult(
            id=item.id,
            p_a=p,
            p_a_raw=p_raw,
            orders=rows,
            principles=per_principle,
            flipped=flipped,
            abstained=sum(r["p_a"] is None for r in rows),
            fallbacks=len(rows) if self.mode == "generate" else 0,
            scores_ab=scores_ab,
        )
