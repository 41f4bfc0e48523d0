"""The judge as a reward function for online RL (direct RLAIF), with trl's signature.

``JudgeReward(judge)(prompts, completions, **columns) -> list[float]`` returns
``2 * P(completion is better than the baseline) - 1`` in [-1, 1]. The baseline is the
dataset's ``reference`` column when there is one, else the reference model's greedy
answer, computed once per prompt and cached. A pointwise judge needs no baseline: its
reward is ``2 * sigmoid(scale * (log P(Yes) - log P(No))) - 1`` of the completion alone.

    from trl import GRPOTrainer
    reward = JudgeReward(build_judge(BackendConfig(model="smollm2-135m")), reference=policy)
    GRPOTrainer(..., reward_funcs=[reward])
"""

from __future__ import annotations

from collections.abc import Sequence

from cai._util import canonical_hash
from cai.backends.base import Backend, Conversation, SamplingParams
from cai.config import RewardSpec
from cai.data import as_messages, response_text
from cai.errors import CaiError
from cai.judge.build import build_judge, scoring_settings
from cai.judge.lmscore import pointwise_scores
from cai.judge.pairwise import Judge, PairItem, sigmoid
from cai.scorers.rewards import ModelReward, RewardFn, SafetySwitch, ToxicityPenalty, WeightedSum


class JudgeReward:
    """A trl reward function backed by a ``Judge``."""

    __name__ = "cai_judge_reward"  # trl logs reward functions by name
    name = "judge_reward"
    description = "judge reward (2·P(completion ≻ baseline) − 1)"
    higher_is_better = True

    def __init__(
        self,
        judge: Judge,
        reference: Backend | None = None,
        params: SamplingParams | None = None,
    ) -> None:
        self.judge = judge
        if judge.mode == "pointwise":  # a score of the completion alone, no baseline
            self.name = "judge_pointwise"
            self.description = "pointwise judge, 2·P(Yes) − 1 of the response alone"
        self.reference = reference
        self.params = params or SamplingParams(max_new_tokens=128, temperature=0.0)
        self.baselines: dict[str, str] = {}
        self.reference_calls = 0

    @staticmethod
    def _key(conv: Conversation) -> str:
        return canonical_hash(conv, 16)

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

    def _pointwise(self, convs: list[Conversation], completions: list[str]) -> list[float]:
        """The pointwise judge's own score of each completion, no baseline needed:
        ``2 * sigmoid(scale * (log P(Yes) - log P(No))) - 1``, for the first sampled principle."""
        judge = self.judge
        jobs = []
        for conv, text in zip(convs, completions):
            pid = judge.questions(f"reward:{self._key(conv)}")[0][0]
            jobs.append((conv, text, judge.constitution.principle(pid)))
        scores = pointwise_scores(judge.backend, judge.constitution, jobs, judge.prompts_dir)
        return [2.0 * sigmoid(judge.score_scale() * x) - 1.0 for x in scores]

    def __call__(self, prompts: list, completions: list, **kwargs) -> list[float]:
        convs = [as_messages(p) for p in prompts]
        if self.judge.mode == "pointwise":
            return self._pointwise(convs, [response_text(c) or "" for c in completions])
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


def reward_from_spec(spec: RewardSpec, policy: str) -> RewardFn:
    """One reward function from its spec; ``policy`` gives the judge's baseline answers
    (on transformers, in the trainer's process). A judge runs on ``spec.judge``'s engine."""
    if spec.kind == "model":
        if not spec.path:
            raise CaiError("a reward of kind 'model' needs a path (a reward model folder or id)")
        return ModelReward(spec.path)
    if spec.kind == "judge":
        from cai.backends import load_backend

        judge = build_judge(spec.judge, constitution=spec.constitution, **scoring_settings(spec))
        return JudgeReward(judge, reference=load_backend("transformers", policy))
    return ToxicityPenalty(spec.path)


def build_reward(
    specs: Sequence[RewardSpec],
    policy: str,
    combine: str = "sum",
    threshold: float = 0.15,
    unsafe_column: str = "unsafe",
) -> RewardFn:
    """One callable from the configured rewards: a weighted sum or the safety switch."""
    if not specs:
        raise CaiError("no reward given: add at least one reward (e.g. --reward-model PATH)")
    funcs = [reward_from_spec(s, policy) for s in specs]
    if combine == "safety-switch":
        if len(funcs) != 2:
            raise CaiError("the safety switch needs exactly two rewards: safety, then helpful")
        return SafetySwitch(funcs[0], funcs[1], threshold, unsafe_column)
    if len(funcs) == 1 and specs[0].weight == 1.0:
        return funcs[0]
    return WeightedSum(funcs, [s.weight for s in specs])
