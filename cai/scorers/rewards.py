"""Reward scorers for online RL, best-of-n and evaluation: ``Scorer``s
(``cai.scorers.base``), with trl's signature ``f(prompts, completions, **columns) ->
list[float]``.

- ``ModelReward``: the scalar output of a one-output sequence classifier (for example a
  model from ``cai train reward``) on the chat-formatted conversation plus completion.
- ``WeightedSum``: ``Σ wᵢ·rᵢ``; the components of the last call are kept in ``last``.
- ``SafetySwitch``: the Llama 2 rule. The safety reward when the prompt is flagged unsafe
  (a boolean dataset column) or the safety score is below a threshold (0.15 in the paper),
  else the helpfulness reward.
- ``ToxicityPenalty``: minus the completion's toxicity (the ``toxic`` probability, in
  [0, 1]) from ``cai evaluate``'s scorer (``toxicity_scorer``): the packaged Jigsaw
  classifier by default, or a named Hugging Face sequence classifier.

The ``cai judge`` reward (``cai.judge.JudgeReward``, 2·P(completion ≻ baseline) − 1) lives
with the judge, and so does ``cai.judge.build_reward``, which turns the ``rewards`` list of
a config into one callable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cai.data import as_messages, response_text
from cai.errors import CaiError

RewardFn = Callable[..., list[float]]
"""Any callable with trl's reward signature; a ``Scorer`` is one that also names itself."""


class ModelReward:
    """A sequence classifier's score of each (prompt, completion)."""

    higher_is_better = True

    def __init__(self, name: str, batch_size: int = 8, trust_remote_code: bool = False) -> None:
        import torch

        from cai.models import load_scalar_model

        self.model, self.tokenizer = load_scalar_model(name, trust_remote_code)
        self.model.eval()
        self.batch_size = batch_size
        self.name = f"reward/{name}"
        self.description = f"reward ({name})"
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
    """``-P(toxic)`` of each completion, from ``cai evaluate``'s toxicity scorer
    (``toxicity_scorer(classifier)``: the packaged Jigsaw classifier by default)."""

    name = "toxicity_penalty"
    higher_is_better = True

    def __init__(self, classifier: str | None = None) -> None:
        from cai.scorers.classifier import toxicity_scorer

        self.scorer = toxicity_scorer(classifier or None)
        self.description = f"minus {self.scorer.description}"
        self.__name__ = self.scorer.__name__

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float]:
        return [-t for t in self.scorer(prompts, completions, **columns)]


class WeightedSum:
    """``Σ wᵢ·fᵢ(prompts, completions)``."""

    name = __name__ = "weighted_sum"
    higher_is_better = True

    def __init__(self, funcs: Sequence[RewardFn], weights: Sequence[float]) -> None:
        if len(funcs) != len(weights) or not funcs:
            raise CaiError("a weighted sum needs one weight per reward function")
        self.funcs, self.weights = list(funcs), list(weights)
        self.last: list[list[float]] = []
        self.description = "weighted sum of " + ", ".join(
            f"{w:g}·{getattr(f, '__name__', type(f).__name__)}" for f, w in zip(funcs, weights)
        )

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float]:
        self.last = [list(f(prompts, completions, **columns)) for f in self.funcs]
        return [
            sum(w * r[i] for w, r in zip(self.weights, self.last)) for i in range(len(completions))
        ]


class SafetySwitch:
    """Llama 2's combination of a safety and a helpfulness reward."""

    name = __name__ = "safety_switch"
    higher_is_better = True

    def __init__(
        self,
        safety: RewardFn,
        helpful: RewardFn,
        threshold: float = 0.15,
        unsafe_column: str = "unsafe",
    ) -> None:
        self.safety, self.helpful = safety, helpful
        self.threshold, self.unsafe_column = threshold, unsafe_column
        self.description = (
            f"safety switch: {getattr(safety, '__name__', 'safety')} if unsafe or below "
            f"{threshold:g}, else {getattr(helpful, '__name__', 'helpful')}"
        )

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float]:
        safe = self.safety(prompts, completions, **columns)
        helpful = self.helpful(prompts, completions, **columns)
        flags = columns.get(self.unsafe_column) or [False] * len(completions)
        return [
            s if (bool(flag) or s < self.threshold) else h
            for s, h, flag in zip(safe, helpful, flags)
        ]
