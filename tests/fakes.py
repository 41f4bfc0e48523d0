"""The one scripted backend for control-flow tests.

A ``ScriptedBackend`` answers ``generate`` and ``score_options`` from scripts, so a test
knows what the model "said" and which option it "preferred". It is for control flow only:
every capability is also tested on the real tiny model (``tiny_backend``).

    ScriptedBackend(answer="(A)")                  # every generation is "(A)"
    ScriptedBackend(answer=lambda conv: ...)       # text from the conversation
    ScriptedBackend(prefer=" (A)")                 # score_options favours " (A)"
    ScriptedBackend(prefer=prefers_text("kindly")) # favours the option holding "kindly"

A verb that was not scripted fails the test when called (a logprob judge must not
generate; a revision loop must not score options).
"""

from __future__ import annotations

from collections.abc import Callable

from cai.backends.base import Generation, options_for_each

Answer = str | Callable[[list[dict]], str]
Prefer = str | Callable[[list[dict]], str | list[float] | None]


class ScriptedBackend:
    """A deterministic backend; records every call.

    ``answer``: the text of every generation, or a function of the conversation.
    ``prefer``: the option ``score_options`` favours, by ``gap`` nats over the others; or
    a function of the conversation that returns the favoured option (None: no preference)
    or the option scores themselves (a list of log-probabilities).
    ``calls``: the conversations of each ``generate`` call; ``scored``: of each
    ``score_options`` call.
    """

    name = "scripted"

    def __init__(
        self,
        answer: Answer | None = None,
        prefer: Prefer | None = None,
        *,
        gap: float = 3.0,
        model_name: str = "scripted-model",
    ) -> None:
        self.answer, self.prefer, self.gap, self.model_name = answer, prefer, gap, model_name
        self.calls: list[list[list[dict]]] = []
        self.scored: list[list[list[dict]]] = []

    def generate(self, conversations, params) -> list[list[Generation]]:
        if self.answer is None:
            raise AssertionError("generate was called, but no answer was scripted")
        self.calls.append(conversations)
        out = []
        for conv in conversations:
            text = self.answer(conv) if callable(self.answer) else self.answer
            out.append([Generation(text, len(text.split()), "stop")] * getattr(params, "n", 1))
        return out

    def score_options(self, conversations, options) -> list[list[float]]:
        if self.prefer is None:
            raise AssertionError("score_options was called, but no preference was scripted")
        self.scored.append(conversations)
        out = []
        each = options_for_each(conversations, options)
        for conv, options in zip(conversations, each):
            best = self.prefer(conv) if callable(self.prefer) else self.prefer
            if isinstance(best, list):
                out.append(best)
                continue
            if best is not None and best not in options:
                raise AssertionError(f"scripted preference {best!r} is not among {options}")
            out.append([0.0 if best in (None, o) else -self.gap for o in options])
        return out


def options_shown(prompt: str) -> tuple[str, str]:
    """The texts of options (A) and (B) in a rendered comparison prompt."""
    a = prompt[prompt.rindex("(A)") + 3 : prompt.rindex("(B)")]
    b = prompt[prompt.rindex("(B)") + 3 :].split("\n\n")[0]
    return a.strip(), b.strip()


def prefers_text(good: str, bad: str = "Poison") -> Callable[[list[dict]], str]:
    """An oracle judge: favours the option whose text holds ``good`` (and not ``bad``)."""

    def prefer(conv: list[dict]) -> str:
        a, b = options_shown(conv[0]["content"])

        def value(text: str) -> int:
            return (good in text) - (bad in text)

        return " (A)" if value(a) >= value(b) else " (B)"

    return prefer


def save_tiny_classifier(folder) -> str:
    """A two-label ("neutral", "toxic") sequence classifier on tiny-random, saved in ``folder``."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from cai.models import resolve_model

    path = resolve_model("tiny-random")
    cfg = AutoConfig.from_pretrained(path)
    cfg.num_labels, cfg.id2label = 2, {0: "neutral", 1: "toxic"}
    cfg.label2id = {"neutral": 0, "toxic": 1}
    tok = AutoTokenizer.from_pretrained(path)
    cfg.pad_token_id = tok.pad_token_id
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)
