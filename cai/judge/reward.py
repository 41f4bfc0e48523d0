"""The judge as a reward function for online RL (direct RLAIF), with trl's signature.

``JudgeReward(judge)(prompts, completions, **columns) -> list[float]`` returns
``2 * P(completion is better than the baseline) - 1`` in [-1, 1]. The baseline is the
dataset's ``reference`` column when there is one, else the reference model's greedy
answer, computed once per prompt and cached.

    from trl import GRPOTrainer
    reward = JudgeReward(Judge(judge_backend, load_constitution("harmless")), reference=policy)
    GRPOTrainer(..., reward_funcs=[reward])
"""

from __future__ import annotations

import hashlib
import json

from cai.backends.base import Backend, Conversation, SamplingParams
from cai.data import as_messages, response_text
from cai.judge.pairwise import Judge, PairItem


class JudgeReward:
    """A trl reward function backed by a ``Judge``."""

    __name__ = "cai_judge_reward"  # trl logs reward functions by name

    def __init__(
        self,
        judge: Judge,
        reference: Backend | None = None,
        params: SamplingParams | None = None,
    ) -> None:
        self.judge = judge
        self.reference = reference
        self.params = params or SamplingParams(max_new_tokens=128, temperature=0.0)
        self.baselines: dict[str, str] = {}
        self.reference_calls = 0

    @staticmethod
    def _key(conv: Conversation) -> str:
        return hashlib.sha256(json.dumps(conv, sort_keys=True).encode()).hexdigest()[:16]

    def _baselines_for(self, convs: list[Conversation]) -> list[str]:
        missing = {self._key(c): c for c in convs if self._key(c) not in self.baselines}
        if missing:
            if self.reference is None:
                raise ValueError(
                    "JudgeReward needs a `reference` column in the dataset or a reference model"
                )
            outs = self.reference.generate(list(missing.values()), self.params)
            self.reference_calls += 1
            for key, out in zip(missing, outs):
                self.baselines[key] = out[0].text.strip()
        return [self.baselines[self._key(c)] for c in convs]

    def __call__(self, prompts: list, completions: list, **kwargs) -> list[float]:
        convs = [as_messages(p) for p in prompts]
        refs = kwargs.get("reference")
        baselines = (
            [response_text(r) or "" for r in refs]
            if refs is not None
            else self._baselines_for(convs)
        )
        items = [
            PairItem(f"reward:{self._key(c)}:{i}", c, response_text(comp) or "", base)
            for i, (c, comp, base) in enumerate(zip(convs, completions, baselines))
        ]
        return [2.0 * r.p_a - 1.0 for r in self.judge.judge(items)]
