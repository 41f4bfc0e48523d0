"""The judge as a reward function for online RL (direct RLAIF), with trl's signature.

``JudgeReward(judge)(prompts, completions, **columns) -> list[float]`` returns
``2 * P(completion is better than the baseline) - 1`` in [-1, 1]. The baseline is the
dataset's ``reference`` column when there is one, else the reference model's greedy
answer, computed once per prompt and cached. A pointwise judge needs no baseline: its
reward is ``2 * sigmoid(scale * (log P(Yes) - log P(No))) - 1`` of the completion alone.

    from trl import GRPOTrainer
    reward = JudgeReward(build_judge(BackendConfig(model="smollm2-135m")), reference=policy)
    GRPOTrainer(..., reward_funcs=[reward])

``JudgeLabeller(judge)`` labels online DPO's pairs: it judges the two samples of a prompt
against each other rather than each against a baseline.
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


class JudgeLabeller:
    """The judge as online DPO's labeller: trl's ``OnlineDPOTrainer`` samples two
    completions per prompt and calls its reward function with ``2 * prompts`` (completion
    ``i`` and ``i + B`` answer the same prompt). The judge compares each pair directly and
    returns ``p`` for the first and ``1 - p`` for the second, where ``p`` is its soft label
    P(first is better); trl chooses the higher. ``labels`` keeps every step's ``p``."""

    __name__ = "cai_judge_labeller"
    name = "judge_labeller"

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.labels: list[list[float]] = []

    def __call__(self, prompts: list, completions: list, **kwargs) -> list[float]:
        half = len(prompts) // 2
        if len(prompts) != 2 * half or len(completions) != len(prompts):
            raise ValueError("JudgeLabeller expects two completions per prompt (2 * B rows)")
        step = len(self.labels)
        items = [
            PairItem(
                f"label:{step}:{i}:{JudgeReward._key(as_messages(prompts[i]))}",
                as_messages(prompts[i]),
                response_text(completions[i]) or "",
                response_text(completions[i + half]) or "",
            )
            for i in range(half)
        ]
        p = [r.p_a for r in self.judge.judge(items)]
        self.labels.append(p)
        return p + [1.0 - x for x in p]


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


def build_labeller(specs: Sequence[RewardSpec]) -> JudgeLabeller | None:
    """Online DPO's judge labeller when ``specs`` is one judge reward, else None."""
    if len(specs) != 1 or specs[0].kind != "judge":
        return None
    spec = specs[0]
    return JudgeLabeller(
        build_judge(spec.judge, constitution=spec.constitution, **scoring_settings(spec))
    )


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
