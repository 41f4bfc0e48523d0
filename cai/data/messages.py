"""Chat messages: the one parser that turns prompts of any shape into a conversation.

A conversation is a list of ``{"role", "content"}`` dicts with roles ``system``, ``user``
and ``assistant``. Every reader of prompts (input files, gold pairs, trl's reward calls)
goes through ``to_conversation`` or ``as_messages``; responses through ``response_text``.
"""

from __future__ import annotations

import json
import re
from typing import Any

ROLES = frozenset({"system", "user", "assistant"})
_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


class BadRow(ValueError):
    """A row-level problem (empty prompt, bad role, no user turn): the row is rejected."""


def parse_hh(text: str) -> list[dict]:
    """Split an Anthropic HH transcript into chat messages.

    ``"\\n\\nHuman: Hi\\n\\nAssistant: Hello\\n\\nHuman: Bye\\n\\nAssistant:"`` becomes
    user "Hi", assistant "Hello", user "Bye": contents are stripped and a trailing empty
    ``Assistant:`` turn is dropped. Text before the first turn becomes a system message.
    """
    if text.lstrip().startswith(("Human:", "Assistant:")):
        text = "\n\n" + text.lstrip()
    parts = _HH_TURN.split(text)
    messages = [{"role": "system", "content": parts[0].strip()}] if parts[0].strip() else []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        role = "user" if speaker == "Human" else "assistant"
        messages.append({"role": role, "content": content.strip()})
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages


def to_conversation(value: Any, column: str = "prompt") -> list[dict]:
    """A prompt as chat messages, cut after the last user turn.

    ``value`` is a string (plain text, or an Anthropic HH transcript, split by
    ``parse_hh``), a list of ``{role, content}`` messages, or (for the ``messages`` and
    ``conversation`` columns) such a list stored as JSON text. Raises ``BadRow`` for an
    empty prompt, a bad role or type, or no user turn; ``column`` names the source in
    the message.
    """
    if isinstance(value, str) and column in ("messages", "conversation"):
        try:  # a message list stored as JSON text, as CSV does
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRow("empty prompt")
    if isinstance(value, str):
        if "\n\nHuman:" not in value and not value.lstrip().startswith("Human:"):
            return [{"role": "user", "content": value.strip()}]
        messages = parse_hh(value)
    elif isinstance(value, (list, tuple)):
        messages = [_message(i, m) for i, m in enumerate(value)]
    else:
        raise BadRow(f"wrong type: {column} is {type(value).__name__}, expected text or messages")
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        raise BadRow("no user turn")
    if not messages[users[-1]]["content"].strip():
        raise BadRow("empty prompt")
    return messages[: users[-1] + 1]


def _message(i: int, message: Any) -> dict:
    if not isinstance(message, dict):
        raise BadRow(f"wrong type: message {i} is {type(message).__name__}, expected an object")
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise BadRow(f"bad role in message {i}: {role!r} (expected system, user or assistant)")
    if not isinstance(content, str):
        raise BadRow(f"wrong type: message {i} content is {type(content).__name__}, expected text")
    return {"role": role, "content": content}


def as_messages(prompt: Any) -> list[dict]:
    """trl's prompt as messages: a string (standard format) or a message list (conversational)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]


def response_text(value: Any) -> str | None:
    """A response given as a string or as a message list (its last message's content)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and isinstance(value[-1], dict):
        return value[-1].get("content")
    return None
