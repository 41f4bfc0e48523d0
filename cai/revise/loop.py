"""The critique-and-revise loop of supervised-learning CAI.

For each prompt: an initial answer; then, for each round, a principle (sampled per row
from the run's seed, or every principle in order with ``principles="all"``), a critique of
the latest answer in the context of the conversation, and a revision. Every stage is one
batched backend call over all the rows of a chunk; generations go through a
content-addressed cache.

Conversations sent at each stage (``[...]`` is a chat message)::

    initial:   [system] + prompt
    critique:  [system] + few-shot traces + prompt + [assistant: latest answer]
               + [user: critique request]
    revision:  ... + [assistant: critique] + [user: revision request]

Each round starts from the conversation and the latest answer, not from the previous
round's critique, which keeps prompts short for small models.

Output row columns (one per prompt)::

    id, prompt (messages), messages (prompt + final revision), completion ([revision]),
    chosen ([revision]), rejected ([initial answer]), initial_response, revision,
    trace {initial_raw, rounds: [{round, principle_id, critique_request, critique,
    critique_raw, no_change_needed, revision_request, revision, revision_raw, skipped}]},
    principle_ids, num_tokens {initial, critique, revision, total}, provenance {...}
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cai import __version__, progress
from cai.backends.base import Backend, Conversation, Generation, SamplingParams
from cai.constitution import Constitution, Principle, row_rng, sample_principle
from cai.data import PromptRow, Reject, split_over_budget
from cai.jobs import SCHEMA_VERSION, GenerationCache, cache_key
from cai.models import model_identity
from cai.prompts import render, template_data, template_hash
from cai.revise.cleaning import DEFAULT_STOPS, clean_generation, cut_stops, says_no_change


@dataclass
class StageStats:
    """What each stage cost: requests, cache hits and generated tokens."""

    requested: int = 0
    cached: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0


@dataclass
class Reviser:
    """Runs the loop over chunks of rows. One instance per run."""

    backend: Backend
    constitution: Constitution
    params: SamplingParams
    rounds: int = 1
    principles: str = "sample"
    """``sample``: one sampled principle per round. ``all``: one round per principle, in order."""
    few_shot: bool = True
    few_shot_examples: int | None = None
    """Use at most this many of the constitution's worked examples (None: all)."""
    critique_temperature: float | None = None
    """The critique stage's temperature (None: ``params.temperature``)."""
    revision_temperature: float | None = None
    """The revision stage's temperature (None: ``params.temperature``)."""
    skip_unneeded: bool = False
    """Skip the revision when the critique says nothing needs to change."""
    prompts_dir: Path | None = None
    only: str | None = None
    """Use only this principle id (for ``cai constitution try --principle``)."""
    cache: GenerationCache = field(default_factory=lambda: GenerationCache(None))
    stats: dict[str, StageStats] = field(default_factory=lambda: defaultdict(StageStats))

    def __post_init__(self) -> None:
        self._stats_lock = threading.Lock()
        self.model_identity = model_identity(self.backend.model_name)  # a retrained folder differs
        self._template_constitution = template_data(self.constitution)  # plain data, made once
        self.system = (
            [{"role": "system", "content": self.constitution.system_prompt}]
            if self.constitution.system_prompt
            else []
        )
        self.prefix = self.system + (self.few_shot_block() if self.few_shot else [])
        self.stops = tuple(dict.fromkeys((*self.params.stop, *DEFAULT_STOPS)))
        self.params = SamplingParams(**{**self.params.to_dict(), "stop": self.stops, "n": 1})
        self.stage_params = {
            "initial": self.params,
            "critique": self._with_temperature(self.critique_temperature),
            "revision": self._with_temperature(self.revision_temperature),
        }

    def _with_temperature(self, temperature: float | None) -> SamplingParams:
        if temperature is None:
            return self.params
        return SamplingParams(**{**self.params.to_dict(), "temperature": temperature})

    # ------------------------------------------------------------------ building prompts

    def _request(
        self,
        template: str,
        principle: Principle,
        conversation: Conversation,
        response: str,
        **variables: str,
    ) -> str:
        """A request rendered with every variable its template documents: ``principle``,
        ``constitution``, the ``conversation`` up to the user's last turn and the
        ``response`` under critique, and for ``revision`` the ``critique`` it answers."""
        return render(
            template,
            self.prompts_dir,
            principle=template_data(principle),
            constitution=self._template_constitution,
            conversation=[{"role": m["role"], "content": m["content"]} for m in conversation],
            response=response,
            **variables,
        )

    def few_shot_block(self) -> Conversation:
        """The constitution's worked examples as chat turns, shared by every row."""
        block: Conversation = []
        for ex in self.constitution.examples[: self.few_shot_examples]:
            crit, rev = self.constitution.example_requests(ex)
            p = Principle(id=ex.principle or "example", critique=crit, revision=rev)
            conv = ex.messages()
            crit_req = self._request("critique", p, conv, ex.response)
            rev_req = self._request("revision", p, conv, ex.response, critique=ex.critique)
            block += conv + [
                {"role": "assistant", "content": ex.response},
                {"role": "user", "content": crit_req},
                {"role": "assistant", "content": ex.critique},
                {"role": "user", "content": rev_req},
                {"role": "assistant", "content": ex.revision},
            ]
        return block

    def plan(self, row: PromptRow) -> list[Principle]:
        """The principles a row's rounds use; seeded by the run's seed and the row's id."""
        if self.only is not None:
            return [self.constitution.principle(self.only)] * self.rounds
        if self.principles == "all":
            return list(self.constitution.principles)
        rng = row_rng(self.params.seed or 0, row.id)
        return [sample_principle(self.constitution, rng) for _ in range(self.rounds)]

    def provenance(self) -> dict:
        c = self.constitution
        return {
            "schema_version": SCHEMA_VERSION,
            "cai_version": __version__,
            "model": self.backend.model_name,
            "model_identity": self.model_identity,
            "backend": self.backend.name,
            "sampling": self.params.to_dict(),
            "stage_temperatures": {k: v.temperature for k, v in self.stage_params.items()},
            "seed": self.params.seed,
            "constitution": {"name": c.name, "version": str(c.version), "hash": c.content_hash},
            "templates": {t: template_hash(t, self.prompts_dir) for t in ("critique", "revision")},
            "rounds": self.rounds,
            "principles": self.principles,
            "few_shot": self.few_shot,
            "few_shot_examples": self.few_shot_examples,
            "skip_unneeded": self.skip_unneeded,
        }

    # ------------------------------------------------------------------ generation

    def generate(
        self, stage: str, rows: list[PromptRow], convs: list[Conversation]
    ) -> list[Generation]:
        """One batched call for every conversation that misses the cache."""
        progress.stage(stage)
        start = time.perf_counter()
        params = self.stage_params.get(stage, self.params)
        settings = {k: v for k, v in params.to_dict().items() if k not in ("seed", "n")}
        keys = [
            cache_key(
                backend=self.backend.name,
                model=self.model_identity,
                sampling=settings,
                row_seed=f"{self.params.seed}:{row.id}",
                stage=stage,
                conversation=conv,
            )
            for row, conv in zip(rows, convs)
        ]
        found = self.cache.get_many(keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            outs = self.backend.generate([convs[i] for i in missing], params)
            fresh = {keys[i]: out[0] for i, out in zip(missing, outs)}
            self.cache.put_many(fresh)
            found.update(fresh)
        with self._stats_lock:  # chunks may run in threads (concurrent_chunks)
            st = self.stats[stage]
            st.requested += len(keys)
            st.cached += len(keys) - len(missing)
            st.generated_tokens += sum(found[keys[i]].num_tokens for i in missing)
            st.seconds += time.perf_counter() - start
        return [found[k] for k in keys]

    def revise(self, rows: list[PromptRow], provenance: dict | None = None) -> list[dict]:
        """Run every stage for a chunk of rows; return one output row each."""
        provenance = provenance or self.provenance()
        plans = [self.plan(r) for r in rows]
        first = self.generate("initial", rows, [self.system + r.conversation for r in rows])
        latest = [clean_generation(g.text, self.stops) for g in first]
        traces: list[list[dict]] = [[] for _ in rows]
        tokens = [{"initial": g.num_tokens, "critique": 0, "revision": 0} for g in first]
        for rnd in range(max(len(p) for p in plans)):
            active = [i for i, p in enumerate(plans) if rnd < len(p)]
            base = {
                i: self.prefix
                + rows[i].conversation
                + [{"role": "assistant", "content": latest[i]}]
                for i in active
            }
            creq = {
                i: self._request("critique", plans[i][rnd], rows[i].conversation, latest[i])
                for i in active
            }
            crit_convs = {i: base[i] + [{"role": "user", "content": creq[i]}] for i in active}
            crits = dict(
                zip(
                    active,
                    self.generate(
                        "critique", [rows[i] for i in active], [crit_convs[i] for i in active]
                    ),
                )
            )
            steps = {}
            for i in active:
                critique = clean_generation(crits[i].text, self.stops)
                tokens[i]["critique"] += crits[i].num_tokens
                steps[i] = {
                    "round": rnd,
                    "principle_id": plans[i][rnd].id,
                    "critique_request": creq[i],
                    "critique": critique,
                    "critique_raw": crits[i].text,
                    "no_change_needed": says_no_change(critique),
                    "revision_request": self._request(
                        "revision",
                        plans[i][rnd],
                        rows[i].conversation,
                        latest[i],
                        critique=critique,
                    ),
                    "revision": latest[i],
                    "revision_raw": "",
                    "skipped": False,
                }
            todo = [i for i in active if not (self.skip_unneeded and steps[i]["no_change_needed"])]
            rev_convs = [
                crit_convs[i]
                + [
                    {"role": "assistant", "content": steps[i]["critique"]},
                    {"role": "user", "content": steps[i]["revision_request"]},
                ]
                for i in todo
            ]
            revs = self.generate("revision", [rows[i] for i in todo], rev_convs) if todo else []
            for i, g in zip(todo, revs):
                text = clean_generation(g.text, self.stops)
                tokens[i]["revision"] += g.num_tokens
                steps[i].update(revision=text or latest[i], revision_raw=g.text)
                latest[i] = text or latest[i]
            for i in active:
                steps[i]["skipped"] = i not in todo
                traces[i].append(steps[i])
        return [
            _output_row(row, first[i], latest[i], traces[i], tokens[i], provenance, self.stops)
            for i, row in enumerate(rows)
        ]

    def check_context(self, rows: list[PromptRow]) -> tuple[list[PromptRow], list[Reject]]:
        """Reject rows whose longest stage could not fit in the model's context."""
        limit = getattr(self.backend, "context_length", None)
        count = getattr(self.backend, "count_tokens", None)
        if not limit or count is None or not rows:
            return rows, []
        # The revision stage holds the conversation, the answer, the critique, the
        # revision and two requests: budget three answers and 256 tokens of requests.
        budget = limit - 3 * self.params.max_new_tokens - 256
        # the critique and revision requests may quote the user's last message: count it
        # twice more
        quoted = count([[r.conversation[-1]] for r in rows])
        sizes = [
            n + 2 * q for n, q in zip(count([self.prefix + r.conversation for r in rows]), quoted)
        ]
        return split_over_budget(
            rows,
            sizes,
            budget,
            lambda n: f"{n} prompt tokens > {budget} available ({limit} - room for answers)",
        )


def _output_row(
    row: PromptRow,
    first: Generation,
    final: str,
    rounds: list[dict],
    tokens: dict,
    provenance: dict,
    stops: tuple[str, ...],
) -> dict:
    initial = cut_stops(first.text, stops).strip()
    answer = [{"role": "assistant", "content": final}]
    return {
        "id": row.id,
        "prompt": row.conversation,
        "messages": row.conversation + answer,
        "completion": answer,
        "chosen": answer,
        "rejected": [{"role": "assistant", "content": initial}],
        "initial_response": initial,
        "revision": final,
        "trace": {"initial_raw": first.text, "rounds": rounds},
        "principle_ids": [r["principle_id"] for r in rounds],
        "num_tokens": {**tokens, "total": sum(tokens.values())},
        "provenance": provenance,
    }


def principle_stats(rows: list[dict]) -> list[dict]:
    """Per principle: rows that used it, the no-change rate, the mean change in length."""
    acc: dict[str, dict] = {}
    for row in rows:
        prev = row["initial_response"]
        for step in row["trace"]["rounds"]:
            a = acc.setdefault(step["principle_id"], {"rounds": 0, "no_change": 0, "delta": 0})
            a["rounds"] += 1
            a["no_change"] += bool(step["no_change_needed"])
            a["delta"] += len(step["revision"]) - len(prev)
            prev = step["revision"]
    return [
        {
            "principle": pid,
            "rounds": a["rounds"],
            "no_change_rate": round(a["no_change"] / a["rounds"], 3),
            "mean_length_change": round(a["delta"] / a["rounds"], 1),
        }
        for pid, a in sorted(acc.items())
    ]
