"""The backend protocol: batched generation and option scoring, nothing else.

Backends know nothing of constitutions or judges. A conversation is a list of
``{"role", "content"}`` messages. Two verbs:

- ``generate(conversations, params)``: one list of ``params.n`` ``Generation`` per
  conversation, each with its text, its generated-token count (non-pad tokens up to and
  including the stop) and its finish reason (``"stop"`` or ``"length"``).
- ``score_options(conversations, options)``: for each conversation, the total
  log-probability of each option string as a continuation of the conversation. If the
  last message is an assistant message, it is an open answer that the option continues
  (for example ``"The better response is"`` + ``" (A)"``); otherwise the option starts
  the assistant's answer. The whole option is scored, token by token: SmolLM2 splits
  ``" (A)"`` into ``" ("``, ``"A"``, ``")"``, so the first token alone says nothing.
  ``options`` is one list for every conversation, or one list per conversation (a
  response's own likelihood: ``score_options([conv], [[response]])``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

from cai.errors import CaiError

Conversation = list[dict[str, str]]
Options = list[str] | list[list[str]]
"""The same option strings for every conversation, or one list per conversation."""


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings shared by every backend."""

    max_new_tokens: int = 256
    """Most tokens to generate per answer."""
    temperature: float = 0.7
    """0 means greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling mass: keep the most likely tokens up to this much probability."""
    min_p: float = 0.0
    """Min-p sampling: drop tokens whose probability (after temperature) is below
    ``min_p`` times the top token's. 0 turns it off; it may be combined with ``top_p``."""
    repetition_penalty: float = 1.0
    """Penalises tokens already GENERATED in this answer, never the prompt's (CTRL-style:
    such a token's logit is divided by the penalty if positive, else multiplied by it).
    1.0 is off; >1 discourages repeats. Same meaning on every engine: the transformers
    backend applies it itself; vLLM's and HTTP servers' own option counts the prompt too,
    so those backends refuse a value other than 1.0 (use ``min_p``/``top_p`` there)."""
    stop: tuple[str, ...] = ()
    """Extra stop strings; the model's end-of-turn token always stops."""
    seed: int | None = 0
    """Fixes sampling, so the same call gives the same text."""
    n: int = 1
    """Answers per conversation."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Generation:
    text: str
    """The answer, cut before any stop string or end-of-turn token."""
    num_tokens: int
    """Generated non-pad tokens, up to and including the stop."""
    finish_reason: str
    """``"stop"`` (end-of-turn or stop string) or ``"length"`` (hit max_new_tokens)."""
    raw: dict = field(default_factory=dict, compare=False)
    """Backend-specific extras (for example, the HTTP backend's response id)."""


@runtime_checkable
class Backend(Protocol):
    """What every backend implements."""

    name: str
    model_name: str

    def generate(
        self, conversations: list[Conversation], params: SamplingParams
    ) -> list[list[Generation]]: ...

    def score_options(
        self, conversations: list[Conversation], options: Options
    ) -> list[list[float]]: ...


def options_for_each(conversations: list[Conversation], options: Options) -> list[list[str]]:
    """The options of each conversation: ``options`` itself when it is one list per
    conversation, else that one list repeated."""
    if options and not isinstance(options[0], str):
        if len(options) != len(conversations):
            raise ValueError(f"{len(options)} option lists for {len(conversations)} conversations")
        return [list(o) for o in options]
    return [list(options)] * len(conversations)


def regroup(flat: list[float], each: list[list[str]]) -> list[list[float]]:
    """Flat scores (conversation by conversation, option by option) as one list per
    conversation, shaped like ``each``."""
    out, at = [], 0
    for opts in each:
        out.append(flat[at : at + len(opts)])
        at += len(opts)
    return out


def refuse_repetition_penalty(params: SamplingParams, backend: str, theirs: str) -> None:
    """Raise ``CaiError`` if ``params`` asks for a repetition penalty: ``backend`` cannot
    apply cai's (generated tokens only), because its own option means ``theirs``."""
    if params.repetition_penalty != 1.0:
        raise CaiError(
            f"repetition_penalty {params.repetition_penalty:g} is not supported by the "
            f"{backend} backend: cai's counts only the answer's tokens, and {theirs}; set "
            "repetition_penalty to 1.0 and use min_p or top_p, or use the transformers backend"
        )


def render_chat(tokenizer, conversation: Conversation) -> str:
    """A conversation as chat-template text; an open final assistant message is continued."""
    open_answer = conversation[-1]["role"] == "assistant"
    return tokenizer.apply_chat_template(
        conversation,
        tokenize=False,
        add_generation_prompt=not open_answer,
        continue_final_message=open_answer,
    )


def cut_at_stop(text: str, stops: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; say whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def option_token_ids(tokenizer, context: list[int], text: str, option: str) -> list[int]:
    """The option's tokens as they follow ``context`` (the tokens of ``text``).

    The option is tokenised together with the text, so that a merge across the boundary
    is seen; if the text's own tokens change in that merge, the option is tokenised alone.
    """
    full = tokenizer(text + option, add_special_tokens=False)["input_ids"]
    if full[: len(context)] == context and len(full) > len(context):
        return full[len(context) :]
    return tokenizer(option, add_special_tokens=False)["input_ids"]
