"""The one Scorer protocol: trl's reward signature plus a name.

A scorer is called as trl calls a reward function, ``scorer(prompts, completions,
**columns) -> list[float]``, one score per completion. Both of trl's formats work:

- standard: ``prompts`` are strings, ``completions`` are strings;
- conversational: ``prompts`` are message lists, ``completions`` are one-message lists
  (``[{"role": "assistant", "content": "…"}]``).

``columns`` are the dataset's other columns, one value per completion (trl passes them);
a scorer reads the ones it needs (``SafetySwitch`` reads ``unsafe``) and ignores the rest.

Besides the call, a scorer says what it is:

- ``name``: the key of its score in ``cai evaluate``'s rows (``scores`` and ``unscored``);
- ``description``: how reports name it, e.g. ``"refusal (phrase detector)"``;
- ``higher_is_better``: which way is better (a toxicity is not; a reward is);
- ``__name__``: the name trl logs it under.

Two refinements, each a protocol of its own that ``cai evaluate`` checks for:

- a ``Detector`` flags a completion when its score is above ``flag_above`` (the phrase
  detector and the judge's refusal: 1 or P(refuses), flagged above 0.5); the evaluation
  records the flag, a boolean;
- a ``Labelled`` scorer comes from a classifier with several labels: ``labels(texts)``
  gives every label's probability, and its score is the one named ``label`` (the
  toxicity classifiers: six Jigsaw labels, the score is ``toxic``); the evaluation keeps
  every label under ``name`` and the score under ``label``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from cai.data import as_messages, response_text


@runtime_checkable
class Scorer(Protocol):
    """``scorer(prompts, completions, **columns) -> list[float]``, with trl's signature."""

    name: str
    """The key of its score in ``cai evaluate``'s rows."""
    description: str
    """How reports name it: what it measures, and with what, e.g. ``"toxicity (jigsaw-bilstm)"``."""
    higher_is_better: bool
    """Which way is better: False for a toxicity or a refusal, True for a reward."""

    def __call__(self, prompts: Sequence, completions: Sequence, **columns: Any) -> list[float]:
        """One score per completion."""
        ...


@runtime_checkable
class Detector(Scorer, Protocol):
    """A scorer whose score above ``flag_above`` flags the completion (e.g. as a refusal)."""

    flag_above: float


@runtime_checkable
class Labelled(Scorer, Protocol):
    """A classifier's scorer: every label's probability, the score being ``label``'s."""

    label: str

    def labels(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Every label's probability for each text."""
        ...


def completion_texts(completions: Sequence) -> list[str]:
    """Each completion's text, from a string or a message list (its last message)."""
    return [response_text(c) or "" for c in completions]


def prompt_texts(prompts: Sequence) -> list[str]:
    """Each prompt's last user message, from a string or a message list."""
    return [
        next((m["content"] for m in reversed(as_messages(p)) if m["role"] == "user"), "")
        for p in prompts
    ]
