"""Toxicity from any Hugging Face sequence classifier (e.g. ``unitary/toxic-bert``), and
``toxicity_scorer``, the one place that chooses the toxicity classifier.

Every label's probability is kept (sigmoid for multi-label models, softmax otherwise); the
toxicity score is the label named ``toxic`` (or ``toxicity``, or the second label of a
binary model). Long texts are truncated to the model's limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from cai.errors import CaiError
from cai.scorers.base import completion_texts

JIGSAW = "jigsaw"
"""The name that means the packaged, offline Jigsaw classifier (``cai.scorers.toxicity``)."""


def toxicity_scorer(classifier: str | None = None):
    """The toxicity scorer of ``cai evaluate`` and of the toxicity reward: the packaged
    Jigsaw classifier for ``None`` or ``"jigsaw"``, else the named Hugging Face classifier
    (a Hub id or a local folder). Either is a ``Labelled`` ``Scorer`` whose score is the
    ``toxic`` probability."""
    if classifier is None or classifier == JIGSAW:
        from cai.scorers.toxicity import JigsawScorer

        return JigsawScorer()
    return HFClassifierScorer(classifier)


class HFClassifierScorer:
    """A Hugging Face classifier's ``toxic`` probability of each completion; ``labels``
    gives every label's."""

    name = "toxicity"
    label = "toxic"
    higher_is_better = False

    def __init__(
        self, classifier: str, batch_size: int = 16, trust_remote_code: bool = False
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from cai.models import resolve_model

        try:
            path = resolve_model(classifier)
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                path, trust_remote_code=trust_remote_code
            ).eval()
        except (OSError, ValueError) as e:
            raise CaiError(f"cannot load the toxicity classifier {classifier!r}: {e}") from e
        labels = self.model.config.id2label
        self.label_names = [labels[i] for i in range(len(labels))]
        self.multi = self.model.config.problem_type == "multi_label_classification"
        self.batch_size = batch_size
        self.classifier = classifier
        self.description = f"toxicity ({classifier})"
        self.__name__ = f"toxicity:{classifier}"

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float]:
        return [s[self.label] for s in self.labels(completion_texts(completions))]

    def labels(self, texts: Sequence[str]) -> list[dict[str, float]]:
        import torch

        out: list[dict[str, float]] = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[i : i + self.batch_size]),
                    padding=True,
                    truncation=True,
                    return_tensors="pt",
                )
                logits = self.model(**batch).logits.float()
                probs = logits.sigmoid() if self.multi else logits.softmax(-1)
                for row in probs.tolist():
                    scores = dict(zip(self.label_names, row))
                    scores["toxic"] = toxic_of(scores, self.label_names)
                    out.append(scores)
        return out


def toxic_of(scores: dict[str, float], labels: list[str]) -> float:
    for key in ("toxic", "toxicity", "TOXIC", "toxic_comment"):
        if key in scores:
            return scores[key]
    if len(labels) == 2:
        return scores[labels[1]]
    raise CaiError(f"cannot tell which label means toxic among {labels}")
