"""Reward scorers for online RL, best-of-n and evaluation, all with trl's signature
``f(prompts, completions, **columns) -> list[float]``.

- ``ModelReward``: the scalar output of a one-output sequence classifier (for example a
  model from ``cai train reward``) on the chat-formatted conversation plus completion.
- ``WeightedSum``: ``Σ wᵢ·rᵢ``; the components of the last call are kept in ``last``.
- ``SafetySwitch``: the Llama 2 rule. The safety reward when the prompt is flagged unsafe
  (a boolean dataset column) or the safety score is below a threshold (0.15 in the paper),
  else the helpfulness reward.
- ``ToxicityPenalty``: minus the completion's toxicity (the ``toxic`` probability, in
  [0, 1]) from ``cai evaluate``'s scorer: the packaged Jigsaw classifier by default, or a
  named Hugging Face sequence classifier.

The ``cai judge`` reward (``cai.judge.JudgeReward``, 2·P(completion ≻ baseline) − 1) lives
with the judge, and so does ``cai.judge.build_reward``, which turns the ``rewards`` list of
a config into one callable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cai.data import as_messages, response_text
from cai.errors import CaiError

RewardFn = Callable[..., list[float]]


class ModelReward:
    """A sequence classifier's score of each (prompt, completion)."""

    def __init__(self, name: str, batch_size: int = 8, trust_remote_code: bool = False) -> None:
        import torch

        from cai.models import load_scalar_model

        self.model, self.tokenizer = load_scalar_model(name, trust_remote_code)
        self.model.eval()
        self.batch_size = batch_size
        self.__name__ = f"reward_model:{name}"
        self._torch = torch

    def texts(self, prompts: Sequence, completions: Sequence) -> list[str]:
        out = []
        for p, c in zip(prompts, completions):
            conv = as_messages(p) + [{"role": "assistant", "content": response_text(c) or ""}]
            out.append(self.tokenizer.apply_chat_template(conv, tokenize=False))
        return out

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float]:
        texts = self.texts(prompts, completions)
        scores: list[float] = []
        with self._torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[i : i + self.batch_size],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    add_special_tokens=False,
                ).to(self.model.device)
                scores += self.model(**batch).logits[:, 0].float().tolist()
        return scores


class ToxicityPenalty:
    """``-P(toxic)`` of each completion, from a ``cai evaluate`` toxicity scorer."""

    def __init__(self, classifier: str | None = None) -> None:
        if classifier:
            from cai.scorers.classifier import HFClassifierScorer

            self.scorer = HFClassifierScorer(classifier)
        else:
            from cai.scorers.toxicity import JigsawScorer

            self.scorer = JigsawScorer()
        self.__name__ = f"toxicity:{self.scorer.name}"

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float]:
        texts = [response_text(c) or "" for c in completions]
        return [-s["toxic"] for s in self.scorer.score(texts)]


class WeightedSum:
    """``Σ wᵢ·fᵢ(prompts, completions)``."""

    __name__ = "weighted_sum"

    def __init__(self, funcs: Sequence[RewardFn], weights: Sequence[float]) -> None:
        if len(funcs) != len(weights) or not funcs:
            raise CaiError("a weighted sum needs one weight per reward function")
        self.funcs, self.weights = list(funcs), list(weights)
        self.last: list[list[float]] = []

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float]:
        self.last = [list(f(prompts, completions, **columns)) for f in self.funcs]
        return [
            sum(w * r[i] for w, r in zip(self.weights, self.last)) for i in range(len(completions))
        ]


class SafetySwitch:
    """Llama 2's combination of a safety and a helpfulness reward."""

    __name__ = "safety_switch"

    def __init__(
        self,
        safety: RewardFn,
        helpful: RewardFn,
        threshold: float = 0.15,
        unsafe_column: str = "unsafe",
    ) -> None:
        self.safety, self.helpful = safety, helpful
        self.threshold, self.unsafe_column = threshold, unsafe_column

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float]:
        safe = self.safety(prompts, completions, **columns)
        helpful = self.helpful(prompts, completions, **columns)
        flags = columns.get(self.unsafe_column) or [False] * len(completions)
        return [
            s if (bool(flag) or s < self.threshold) else h
            for s, h, flag in zip(safe, helpful, flags)
        ]
