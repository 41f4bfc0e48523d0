"""Judge scores that language modelling can answer, for small models.

A small model has not learned the format of "(A) or (B)?"; it has learned language. These
scores ask it questions of that kind, about one response at a time, and compare the two
responses of a pair. Each is a *feature* of the pair, oriented "a minus b": swapping the
responses negates it, so none has a position bias.

- ``contrast_sum``: how much more likely each response is under a persona that follows the
  principle than under one that violates it (the constitution's ``contrast`` field, system
  message ``persona.j2``), summed over the response's tokens:
  ``[log p(a | follows) - log p(a | violates)] - [same for b]``.
- ``contrast_mean``: the same log-ratio per character of each response (length-normalised).
- ``likelihood_mean``: ``log p(response | follows)`` per character, a minus b: how natural
  the response is for a principled assistant, with no negative persona.
- ``pointwise``: ``log P(" Yes") - log P(" No")`` after the principle's yes/no question about
  the one response (``pointwise.j2``, open answer "Answer:"), a minus b. ``lm_scores`` also
  returns each response's own score ``(s_a, s_b)`` from the same pass.
- ``length``: ``log(len(a) / len(b))`` in characters; no model call. Only an ensemble uses
  it, to see length and discount it.

Characters rather than tokens normalise the means, so that every engine (and the HTTP
backend) gives the same feature; lm-evaluation-harness normalises by length the same way.
All model calls are batched ``score_options`` calls: two passes per response for the
contrast features, one two-option pass per response for ``pointwise``; nothing is generated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from cai import progress
from cai.backends.base import Backend, Conversation
from cai.constitution import Constitution, Principle, contrast_personas, pointwise_question
from cai.prompts import render

ANSWER = "Answer:"
"""The pointwise judge's open answer, continued by " Yes" or " No"."""
YES_NO = (" Yes", " No")

CONTRAST = ("contrast_sum", "contrast_mean", "likelihood_mean")
"""Features from the persona passes."""
LM_FEATURES = (*CONTRAST, "pointwise", "length")
"""Every feature this module computes."""


def with_persona(conversation: Conversation, system: str) -> Conversation:
    """``conversation`` under the system message ``system`` (merged with its own, if any)."""
    if conversation and conversation[0]["role"] == "system":
        system = system + "\n\n" + conversation[0]["content"]
        conversation = conversation[1:]
    return [{"role": "system", "content": system}, *conversation]


def _length(text: str) -> int:
    return max(len(text), 1)


def check_constitution(constitution: Constitution, features: Iterable[str]) -> None:
    """Raise ``CaiError`` now, before any model loads, if a principle lacks the persona or
    the yes/no question that ``features`` need (the error names the principle and field)."""
    features = set(features)
    for principle in constitution.principles:
        if features & set(CONTRAST):
            contrast_personas(constitution, principle)
        if "pointwise" in features:
            pointwise_question(constitution, principle)


def lm_features(
    backend: Backend,
    constitution: Constitution,
    jobs: list[tuple[Conversation, str, str, Principle]],
    names: Iterable[str],
    prompts_dir: str | None = None,
) -> list[dict[str, float]]:
    """The features ``names`` (of ``LM_FEATURES``) for each job ``(conversation, a, b,
    principle)``: one dict per job, feature name -> value ("a minus b")."""
    return lm_scores(backend, constitution, jobs, names, prompts_dir)[0]


def lm_scores(
    backend: Backend,
    constitution: Constitution,
    jobs: list[tuple[Conversation, str, str, Principle]],
    names: Iterable[str],
    prompts_dir: str | None = None,
) -> tuple[list[dict[str, float]], list[tuple[float, float]] | None]:
    """``lm_features``, and, when ``pointwise`` is among ``names``, each job's per-response
    pointwise scores ``(s_a, s_b)`` (``log P(" Yes") - log P(" No")``) from the same pass,
    whose difference is the ``pointwise`` feature; None otherwise."""
    names = set(names)
    unknown = names - set(LM_FEATURES)
    if unknown:
        raise ValueError(f"unknown features {sorted(unknown)}; known: {', '.join(LM_FEATURES)}")
    out: list[dict[str, float]] = [{} for _ in jobs]
    if names & set(CONTRAST):
        _contrast(backend, constitution, jobs, prompts_dir, out, names)
    singles = None
    if "pointwise" in names:
        singles = _pointwise(backend, constitution, jobs, prompts_dir, out)
    for row, (_, a, b, _) in zip(out, jobs):
        row["length"] = math.log(_length(a) / _length(b))
    return [{k: v for k, v in row.items() if k in names} for row in out], singles


def _contrast(backend, constitution, jobs, prompts_dir, out, names: set[str]) -> None:
    both = bool(names & {"contrast_sum", "contrast_mean"})  # else the follows persona only
    convs, responses = [], []
    for conv, a, b, principle in jobs:
        personas = contrast_personas(constitution, principle)
        for persona in (personas.follows, personas.violates) if both else (personas.follows,):
            system = render("persona", prompts_dir, persona=persona)
            for response in (a, b):
                convs.append(with_persona(conv, system))
                responses.append([response])
    progress.stage("contrast" if both else "likelihood")
    lp = [s[0] for s in backend.score_options(convs, responses)]
    step = 4 if both else 2
    for k, (row, (_, a, b, _)) in enumerate(zip(out, jobs)):
        a_follows, b_follows = lp[step * k : step * k + 2]
        la, lb = _length(a), _length(b)
        row["likelihood_mean"] = a_follows / la - b_follows / lb
        if both:
            a_violates, b_violates = lp[step * k + 2 : step * k + 4]
            ratio_a, ratio_b = a_follows - a_violates, b_follows - b_violates
            row["contrast_sum"] = ratio_a - ratio_b
            row["contrast_mean"] = ratio_a / la - ratio_b / lb


def _pointwise(backend, constitution, jobs, prompts_dir, out) -> list[tuple[float, float]]:
    singles = [(conv, r, principle) for conv, a, b, principle in jobs for r in (a, b)]
    yes_minus_no = pointwise_scores(backend, constitution, singles, prompts_dir)
    pairs = list(zip(yes_minus_no[0::2], yes_minus_no[1::2]))
    for row, (s_a, s_b) in zip(out, pairs):
        row["pointwise"] = s_a - s_b
    return pairs


def pointwise_scores(
    backend: Backend,
    constitution: Constitution,
    jobs: list[tuple[Conversation, str, Principle]],
    prompts_dir: str | None = None,
) -> list[float]:
    """Per-response scores ``log P(" Yes") - log P(" No")`` for jobs ``(conversation,
    response, principle)``: the pointwise judge on one response (a per-completion reward)."""
    convs = []
    for conv, response, principle in jobs:
        question = pointwise_question(constitution, principle)
        prompt = render(
            "pointwise", prompts_dir, conversation=conv, response=response, question=question
        )
        convs.append(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": ANSWER}]
        )
    progress.stage("pointwise")
    return [yes - no for yes, no in backend.score_options(convs, list(YES_NO))]
