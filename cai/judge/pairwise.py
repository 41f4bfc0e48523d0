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
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from cai import progress
from cai.backends.base import Backend, Conversation, SamplingParams
from cai.constitution import Constitution, comparison_question, row_rng
from cai.prompts import render, template_data

ANSWER_PREFIX = "The answer is:"
COT_ANSWER = "So the answer is"
OPTIONS = (" (A)", " (B)")
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


@dataclass
class Judge:
    """Compares pairs of responses with a judge backend. One instance per run, made by
    ``cai.judge.build_judge`` (on any engine) everywhere outside tests."""

    backend: Backend
    constitution: Constitution
    mode: str = "logprob"
    """``logprob`` (option scores), ``cot`` (reason, then option scores) or ``generate``."""
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
        jobs = []  # (item index, principle id, question, order)
        for i, item in enumerate(items):
            for pid, q in self.questions(item.id):
                for order in ("ab", "ba") if self.both_orders else ("ab",):
                    jobs.append((i, pid, q, order))
        template = "compare_cot" if self.mode == "cot" else "compare"
        convs = []
        for i, _, q, order in jobs:
            it = items[i]
            x, y = (it.a, it.b) if order == "ab" else (it.b, it.a)
            convs.append([{"role": "user", "content": self._prompt(it, q, x, y, template)}])
        p_first, raws, abstained = self._p_first(convs)
        by_item: list[list[dict]] = [[] for _ in items]
        for (i, pid, _q, order), p, raw in zip(jobs, p_first, raws):
            p_a = p if order == "ab" or p is None else 1.0 - p
            by_item[i].append({"order": order, "principle_id": pid, "p_a": p_a, "raw": raw})
        results = [self._combine(item, rows) for item, rows in zip(items, by_item)]
        self.stats["pairs"] += len(items)
        self.stats["abstained"] += abstained
        if self.mode == "generate":
            self.stats["fallbacks"] += len(jobs)
        return results

    def _p_first(self, convs: list[Conversation]) -> tuple[list[float | None], list[str], int]:
        """P(option shown first is better) per conversation, with any raw text."""
        if self.mode == "generate":
            params = SamplingParams(**{**self.params.to_dict(), "max_new_tokens": 16, "n": 1})
            progress.stage("verdicts")
            outs = self.backend.generate(convs, params)
            raws = [o[0].text for o in outs]
            choice = [parse_choice(t) for t in raws]
            probs = [None if c is None else (1.0 if c == "A" else 0.0) for c in choice]
            return probs, raws, sum(c is None for c in choice)
        raws = ["" for _ in convs]
        prefix = ANSWER_PREFIX
        if self.mode == "cot":
            params = SamplingParams(**{**self.params.to_dict(), "stop": (COT_ANSWER,), "n": 1})
            progress.stage("reasoning")
            raws = [o[0].text for o in self.backend.generate(convs, params)]
        scored = [
            c
            + [
                {
                    "role": "assistant",
                    "content": (r.strip() + "\n" + COT_ANSWER) if self.mode == "cot" else prefix,
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
        return PairResult(
            id=item.id,
            p_a=p,
            p_a_raw=p_raw,
            orders=rows,
            principles=per_principle,
            flipped=flipped,
            abstained=sum(r["p_a"] is None for r in rows),
            fallbacks=len(rows) if self.mode == "generate" else 0,
        )
