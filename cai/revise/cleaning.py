"""Clean generated critiques and revisions before they are stored.

Small chat models wrap a revision in chatter ("Sure, here is the revised response:"),
echo the labels of the prompt ("Revision:"), quote the whole answer or run on into a
new turn. The stored text drops all of that; the raw text stays in the trace.
"""

from __future__ import annotations

import re

# Turn markers that mean the model started writing the next turn by itself.
DEFAULT_STOPS: tuple[str, ...] = (
    "\nHuman:",
    "\nUser:",
    "\nCritiqueRequest:",
    "\nRevisionRequest:",
    "<|im_start|>",
)

_LABEL = re.compile(
    r"^\s*(?:\*\*)?(?:revised response|revised answer|rewritten response|revision|critique"
    r"|response|answer|assistant)(?:\*\*)?\s*:\s*(?:\*\*)?\s*",
    re.IGNORECASE,
)
# A first line that only announces what follows: "Sure! Here is the revised response:".
_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|certainly|of course|okay|ok|absolutely|alright)[!,.]?\s*)?"
    r"(?:here(?:'s| is| are)|below is|i(?:'ve| have) (?:revised|rewritten|updated))"
    r"[^\n]{0,80}?(?:revis|rewrit|updat|improv|respon|answer|version)[^\n]{0,60}?[:.!]\s*\n+",
    re.IGNORECASE,
)
_BARE_ACK = re.compile(r"^\s*(?:sure|certainly|of course|okay|absolutely)[!.]\s*\n+", re.IGNORECASE)
_QUOTES = [('"', '"'), ("\u201c", "\u201d"), ("'", "'")]

NO_CHANGE = re.compile(
    r"\b(?:no (?:changes?|revisions?|edits?|improvements?) (?:is |are )?"
    r"(?:needed|necessary|required)"
    r"|(?:does not|doesn't|do not|don't) (?:need|require) (?:any )?(?:changes?|revisions?|editing)"
    r"|nothing (?:needs to be|to) (?:changed?|revised?|fix(?:ed)?)"
    r"|there (?:is|are) no (?:issues?|problems?|harmful content)"
    r"|(?:is|was) (?:already )?(?:harmless|appropriate|safe|fine)(?: as it is)?[.,]"
    r"|no (?:issues?|problems?) (?:were |was )?(?:found|identified))",
    re.IGNORECASE,
)


def cut_stops(text: str, stops: tuple[str, ...] = DEFAULT_STOPS) -> str:
    """Cut ``text`` before the first stop string."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def clean_generation(text: str, stops: tuple[str, ...] = DEFAULT_STOPS) -> str:
    """The stored form of a critique or revision: no preamble, label, quotes or run-on."""
    text = cut_stops(text, stops).strip()
    for _ in range(3):  # "Sure! Here is the revision:\n\nRevision: ..." has two layers
        before = text
        text = _PREAMBLE.sub("", text, count=1)
        text = _BARE_ACK.sub("", text, count=1)
        text = _LABEL.sub("", text, count=1).strip()
        if text == before:
            break
    for left, right in _QUOTES:
        inner = text[1:-1]
        if len(text) > 2 and text[0] == left and text[-1] == right and left not in inner:
            text = inner.strip()
    return text


def says_no_change(critique: str) -> bool:
    """Whether a critique says the response needs no change."""
    return bool(NO_CHANGE.search(critique))
