"""The HTTP backend: any OpenAI-compatible server (vLLM, TGI, llama.cpp, OpenAI).

Requests go out concurrently (``max_in_flight`` at a time) from an ``httpx.AsyncClient``,
round-robin over one or more base URLs, with retries and exponential backoff on 429,
5xx, connection errors and timeouts. The public methods are synchronous.

Option scoring has two methods (``scoring=``):

- ``"echo"`` (exact): the conversation is rendered client-side with ``tokenizer``'s chat
  template, exactly like ``TransformersBackend.render``, and ``/completions`` is asked to
  echo the prompt ``rendered + option`` with log-probs; the option's score is the sum of
  the log-probs of the echoed tokens that start at or after the end of ``rendered``.
  Needs a server whose ``/completions`` supports ``echo`` with ``logprobs`` (vLLM does).
  A token that straddles the boundary between ``rendered`` and the option is not counted.
- ``"top_logprobs"`` (approximate, no tokenizer needed): one ``/chat/completions`` call
  per conversation, with the answer continued by the options' common prefix, asks for
  the top 20 next tokens. Each option scores the log-prob of the returned token that
  begins the rest of the option (longest match; surrounding whitespace ignored if no
  exact match). An option whose first token is not among the top 20 gets a floor: the
  lowest returned log-prob minus log(2). This is not the log-prob of the whole option,
  but for options that differ in their first differing token (``" (A)"`` and ``" (B)"``)
  the scores are right *relative to each other* (while those tokens are in the top 20),
  so their normalised probabilities, which is what a judge uses, are right. Options
  sharing that token score the same.

Sampling: ``min_p`` is sent only when above 0 (vLLM and llama.cpp take it; the OpenAI
API rejects unknown fields). No repetition penalty is ever sent, because servers differ
on what it counts (see ``SamplingParams.repetition_penalty``): one other than 1.0 is a
``CaiError`` before any request.

An open final assistant message is continued with vLLM's extra fields
``continue_final_message`` and ``add_generation_prompt``; servers that reject unknown
fields (OpenAI itself) then answer 400, which fails loudly rather than scoring wrongly.

``"auto"`` picks ``"echo"`` when a tokenizer is given, else ``"top_logprobs"``.

A server that misbehaves costs a failed attempt, never a hang or a traceback. Each
attempt has an overall deadline of ``timeout`` seconds (httpx's own timeout is per read,
so a server that drips one byte at a time would otherwise hold a request forever). A 200
answer that is not usable counts like a 5xx: retried, then ``BackendError`` naming what
was wrong (batch jobs then record the row in ``failed.jsonl``). Unusable means: not JSON
(truncated, or an HTML page), a body over the byte cap (``body_cap``), no ``choices``, no
``message``, ``content`` null or not a string, malformed log-probs. A well-formed answer
without log-probs where they were asked for fails at once, like a 4xx: the server does
not support them, and retrying will not change that. The body is read as a stream and
dropped as soon as it passes the cap, so a 50 MB answer is never held; an answer's text
is bounded by ``max_tokens`` too (``CHARS_PER_TOKEN``), cut with finish reason "length".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import itertools
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from cai import progress
from cai.backends.base import (
    Conversation,
    Generation,
    Options,
    SamplingParams,
    cut_at_stop,
    options_for_each,
    refuse_repetition_penalty,
    regroup,
    render_chat,
)
from cai.errors import BackendError, CaiError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("cai")

SCORING = ("auto", "echo", "top_logprobs")
TOP_LOGPROBS = 20
MAX_STOP = 4
"""Most stop strings the OpenAI API (and vLLM's server) accepts per request. Further
ones are applied to the answer client-side; its token count may then run past them."""
MAX_RETRY_AFTER = 30.0
"""Longest wait, in seconds, that a server's Retry-After header can impose."""
FINISH_REASONS = {"length": "length", "max_tokens": "length", "model_length": "length"}
"""Server finish reasons meaning "cut by the token limit"; every other one means "stop"."""
MIN_BODY_BYTES = 256 * 1024
"""Every answer body may have this many bytes (JSON envelope, usage, ids, error texts)."""
BYTES_PER_TOKEN = 256
"""Further body bytes per ``max_tokens``: a token is at most a few dozen characters, each
at most 6 bytes once JSON-escaped (``\\uXXXX``)."""
ECHO_BYTES_PER_PROMPT_BYTE = 512
"""Further body bytes per byte of an echoed prompt: each prompt token comes back with its
text, log-prob, top log-probs and offset (about 200 bytes), and a token is at least one byte."""
CHARS_PER_TOKEN = 64
"""An answer's text is cut to ``max_tokens * CHARS_PER_TOKEN`` characters (finish reason
"length"): no tokenizer has tokens that long, so only a misbehaving server is cut."""
ERROR_BODY_BYTES = 64 * 1024
"""Most bytes read of an error answer (4xx, 5xx): enough for its message."""
HTTP_PENALTY = (
    "a server's repetition_penalty has no single meaning (vLLM's counts every prompt "
    "token, llama.cpp's a window of recent tokens including the prompt, OpenAI has none)"
)
"""Why the HTTP backend sends no repetition penalty (``refuse_repetition_penalty``)."""


def _import_httpx() -> Any:
    try:
        import httpx
    except ImportError as e:
        raise CaiError("the openai backend needs httpx: pip install 'cai[openai]'") from e
    return httpx


def _run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop is running: use a thread
        return pool.submit(asyncio.run, coro).result()


def _server_message(raw: bytes, reason: str) -> str:
    """The error message from an OpenAI, vLLM or TGI error body, else the raw text."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return raw[:500].decode("utf-8", "replace").strip() or reason
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        err = err.get("message") or err.get("detail") or err
    return str(err)[:500]


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds asked for by a Retry-After header (number or HTTP date), bounded."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def body_cap(body: dict) -> int:
    """Most bytes an answer to ``body`` may have (see ``MIN_BODY_BYTES`` and the next ones).

    For ``max_tokens`` 8 that is 258 KiB, so a 50 MB answer is refused after 258 KiB.
    """
    cap = MIN_BODY_BYTES + BYTES_PER_TOKEN * max(0, int(body.get("max_tokens") or 0))
    if body.get("echo"):
        cap += ECHO_BYTES_PER_PROMPT_BYTE * len(str(body.get("prompt") or "").encode())
    return cap


class BadAnswer(Exception):
    """A 200 answer that cannot be used; a failed attempt, retried like a 5xx."""


def _json_kind(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), "a value")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _first_choice(data: Any) -> dict:
    """``data["choices"][0]``, checked to be an object."""
    if not isinstance(data, dict):
        raise BadAnswer(f"a body that is {_json_kind(data)}, not an object")
    choices = data.get("choices")
    if choices is None:
        raise BadAnswer("no choices")
    if not isinstance(choices, list):
        raise BadAnswer(f"choices that is {_json_kind(choices)}, not a list")
    if not choices:
        raise BadAnswer("an empty choices list")
    if not isinstance(choices[0], dict):
        raise BadAnswer(f"choices[0] that is {_json_kind(choices[0])}, not an object")
    return choices[0]


def _usage(data: dict, default: int) -> int:
    """``usage.completion_tokens`` if it is a non-negative integer, else ``default``."""
    usage = data.get("usage")
    tokens = _count(usage.get("completion_tokens")) if isinstance(usage, dict) else None
    return default if tokens is None else tokens


def _is_entry(entry: Any) -> bool:
    """Whether ``entry`` is a top-logprobs entry: a token string and a number."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("token"), str)
        and _is_number(entry.get("logprob"))
    )


def _count(value: Any) -> int | None:
    """A token count from ``usage``, or None if it is not a non-negative integer."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if ok else None


def _top_score(rest: str, candidates: dict[str, float]) -> float | None:
    """Log-prob of the candidate token that begins ``rest``: exact, else whitespace-stripped."""
    pool = [t for t in candidates if t and rest.startswith(t)] or [
        t for t in candidates if t.strip() and rest.strip().startswith(t.strip())
    ]
    if not pool:
        return None
    return candidates[max(pool, key=lambda t: (len(t.strip()), candidates[t]))]


class OpenAIBackend:
    """Talks to OpenAI-compatible servers over HTTP.

    Args:
        model: the model name the server knows (``--served-model-name`` for vLLM).
        base_url: one URL ending in ``/v1``, or several (a list or a comma-separated
            string), shared round-robin across requests and retries.
        api_key_env: the environment variable holding the API key, sent as a Bearer
            token; may be unset for local servers. The key is never logged or shown.
        max_in_flight: most concurrent requests.
        timeout: seconds per attempt, overall (connecting, waiting and reading the whole
            answer); an attempt past it is a timeout, retried like the others.
        max_retries: retries after the first attempt on 429, 5xx, connection errors and
            timeouts; other 4xx answers fail at once.
        backoff: first retry delay in seconds, doubled each retry (plus up to 25% jitter).
        tokenizer: a model name or folder (see ``cai.models.resolve_model``) whose chat
            template matches the server's; enables exact ``"echo"`` scoring.
        scoring: ``"auto"``, ``"echo"`` or ``"top_logprobs"`` (see the module docs).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | list[str] = "http://127.0.0.1:8000/v1",
        api_key_env: str = "OPENAI_API_KEY",
        max_in_flight: int = 16,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        tokenizer: str | None = None,
        scoring: str = "auto",
    ) -> None:
        self._httpx = _import_httpx()
        self.model_name = model
        urls = base_url.split(",") if isinstance(base_url, str) else list(base_url)
        self.base_urls = [u.strip().rstrip("/") for u in urls if u.strip()]
        if not self.base_urls:
            raise CaiError("the openai backend needs at least one base_url")
        self._urls = itertools.cycle(self.base_urls)
        self._api_key = os.environ.get(api_key_env) or None
        self.max_in_flight = max(1, int(max_in_flight))
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff = float(backoff)
        if scoring not in SCORING:
            raise CaiError(f"unknown scoring {scoring!r}; choose one of: {', '.join(SCORING)}")
        if scoring == "echo" and not tokenizer:
            raise CaiError("echo scoring renders prompts client-side: give tokenizer=MODEL")
        self.scoring_method = (
            "echo" if scoring == "echo" or (scoring == "auto" and tokenizer) else "top_logprobs"
        )
        self.tokenizer: Any = None
        if self.scoring_method == "echo":
            from transformers import AutoTokenizer

            from cai.models import resolve_model

            self.tokenizer = AutoTokenizer.from_pretrained(resolve_model(str(tokenizer)))
        self._logged = False

    def __repr__(self) -> str:  # no key here
        urls, method = self.base_urls, self.scoring_method
        return f"OpenAIBackend(model={self.model_name!r}, base_url={urls!r}, scoring={method!r})"

    # ------------------------------------------------------------------ HTTP

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    async def _send(self, client: Any, url: str, body: dict) -> tuple[int, str, Any, bytes]:
        """One POST: status, reason, headers and body, read as a stream up to its cap.

        Raises ``BadAnswer`` on a 2xx/3xx body over ``body_cap(body)`` (declared or
        streamed); an error body is cut at ``ERROR_BODY_BYTES``, being only a message.
        """
        async with client.stream("POST", url, json=body) as resp:
            ok = resp.status_code < 400
            cap = body_cap(body) if ok else ERROR_BODY_BYTES
            declared = resp.headers.get("content-length", "")
            if ok and declared.isdigit() and int(declared) > cap:
                raise BadAnswer(f"a body of {int(declared)} bytes, over the cap of {cap}")
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    if ok:
                        raise BadAnswer(f"a body over the cap of {cap} bytes")
                    chunks.append(chunk[: cap - size])  # the first ``cap`` bytes in all
                    break
                chunks.append(chunk)
            return resp.status_code, resp.reason_phrase, resp.headers, b"".join(chunks)

    async def _post(
        self,
        client: Any,
        sem: asyncio.Semaphore,
        path: str,
        body: dict,
        parse: Callable[[str, Any], Any],
    ) -> Any:
        """POST with retries and a deadline per attempt; returns ``parse(base_url, json)``.

        ``parse`` raises ``BadAnswer`` for an unusable answer (retried) or ``CaiError``
        for one that retrying cannot mend.
        """
        httpx = self._httpx
        last = ""
        for attempt in range(self.max_retries + 1):
            base = next(self._urls)
            url, wait = base + path, None
            async with sem:
                try:
                    status, reason, headers, raw = await asyncio.wait_for(
                        self._send(client, url, body), self.timeout
                    )
                except httpx.RequestError as e:  # connection errors, read timeouts, bad gzip
                    last = f"{type(e).__name__}: {e}".rstrip(": ")
                except TimeoutError:  # the whole-request deadline
                    last = f"no complete answer within the {self.timeout:g} s timeout"
                except BadAnswer as e:
                    last = f"HTTP 200 with {e}"
                else:
                    if status < 400:
                        try:
                            data = self._json(raw)
                            result = parse(base, data)
                            progress.response(data)  # the job's bar: only usable answers count
                            return result
                        except BadAnswer as e:
                            last = f"HTTP {status} with {e}"
                    else:
                        message = self._redact(_server_message(raw, reason))
                        if status != 429 and status < 500:
                            raise CaiError(f"{url} answered HTTP {status}: {message}")
                        last, wait = f"HTTP {status}: {message}", _retry_after(headers)
            if attempt < self.max_retries:
                delay = self.backoff * 2**attempt * (1 + 0.25 * random.random())
                await asyncio.sleep(delay if wait is None else wait)
        tries = self.max_retries + 1
        raise BackendError(f"{url} failed after {tries} attempts; last error: {self._redact(last)}")

    def _json(self, raw: bytes) -> Any:
        """The parsed body; ``BadAnswer`` (quoting its start) if it is not JSON."""
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            start = raw[:60].decode("utf-8", "replace")
            raise BadAnswer(f"invalid JSON ({len(raw)} bytes, starting {start!r})") from None

    def _post_all(
        self, path: str, bodies: list[dict], parse: Callable[[int, str, Any], Any]
    ) -> list[Any]:
        """POST every body (plus the model name) concurrently; ``parse(i, base_url, json)``
        of each answer, in the same order."""
        httpx = self._httpx
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        bodies = [{"model": self.model_name, **b} for b in bodies]

        async def main() -> list[Any]:
            sem = asyncio.Semaphore(self.max_in_flight)
            limits = httpx.Limits(max_connections=self.max_in_flight)
            kw = {"timeout": self.timeout, "headers": headers, "limits": limits}
            async with httpx.AsyncClient(**kw) as client:
                posts = (
                    self._post(client, sem, path, b, lambda base, data, i=i: parse(i, base, data))
                    for i, b in enumerate(bodies)
                )
                return list(await asyncio.gather(*posts))

        return _run_sync(main()) if bodies else []

    # ------------------------------------------------------------------ protocol

    def render(self, conversation: Conversation) -> str:
        """The chat-template text, as ``TransformersBackend.render`` makes it (echo scoring)."""
        return render_chat(self.tokenizer, conversation)

    @staticmethod
    def _continuation(conversation: Conversation) -> dict:
        """vLLM's extra fields that continue an open final assistant message."""
        if conversation and conversation[-1]["role"] == "assistant":
            return {"continue_final_message": True, "add_generation_prompt": False}
        return {}

    def generate(
        self, conversations: list[Conversation], params: SamplingParams
    ) -> list[list[Generation]]:
        """``params.n`` answers per conversation, one request each (seed + i) for exact counts.

        Each body has ``max_tokens``, ``temperature``, ``top_p``, ``stop`` (at most
        ``MAX_STOP``) and ``seed`` (unless None), and ``min_p`` only when above 0: vLLM and
        llama.cpp take it, the OpenAI API rejects unknown fields. A ``repetition_penalty``
        other than 1.0 is a ``CaiError`` before any request (see ``HTTP_PENALTY``).
        """
        refuse_repetition_penalty(params, "openai", HTTP_PENALTY)
        bodies = []
        for conv in conversations:
            for i in range(params.n):
                body: dict[str, Any] = {
                    "messages": conv,
                    "max_tokens": params.max_new_tokens,
                    "temperature": params.temperature,
                    "top_p": params.top_p,
                    **self._continuation(conv),
                }
                if params.stop:  # the API takes 4; all are applied to the answer here
                    body["stop"] = list(params.stop[:MAX_STOP])
                if params.seed is not None:
                    body["seed"] = params.seed + i
                if params.min_p > 0:
                    body["min_p"] = params.min_p
                bodies.append(body)
        limit = params.max_new_tokens

        def parse(i: int, base: str, data: Any) -> Generation:
            return self._generation(base, data, params.stop, limit)

        answers = iter(self._post_all("/chat/completions", bodies, parse))
        return [[next(answers) for _ in range(params.n)] for _ in conversations]

    @staticmethod
    def _generation(base: str, data: Any, stops: tuple[str, ...], max_tokens: int) -> Generation:
        """The answer in ``data``, checked, and cut to ``max_tokens`` (``CHARS_PER_TOKEN``).

        An empty string is an answer; a null or missing ``content`` is not (``BadAnswer``).
        """
        choice = _first_choice(data)
        message = choice.get("message")
        if message is None:
            raise BadAnswer("no choices[0].message")
        if not isinstance(message, dict):
            raise BadAnswer(f"choices[0].message that is {_json_kind(message)}, not an object")
        content = message.get("content")
        if content is None:
            raise BadAnswer("choices[0].message.content null or missing")
        if not isinstance(content, str):
            raise BadAnswer(f"choices[0].message.content that is {_json_kind(content)}")
        bound = max(1, max_tokens) * CHARS_PER_TOKEN
        text, stopped = cut_at_stop(content[:bound], stops)
        finish = choice.get("finish_reason")
        reason = FINISH_REASONS.get(finish if isinstance(finish, str) else "", "stop")
        if len(content) > bound:
            reason = "length"
        reason = "stop" if stopped else reason
        tokens = _usage(data, 0)
        if tokens > max_tokens > 0:  # the server says it went past the limit: it stopped there
            tokens, reason = max_tokens, "stop" if stopped else "length"
        answer_id = data.get("id") if isinstance(data.get("id"), str) else None
        return Generation(text, tokens, reason, raw={"id": answer_id, "base_url": base})

    def score_options(
        self, conversations: list[Conversation], options: Options
    ) -> list[list[float]]:
        """Log-probability of each option continuing each conversation (see the module docs)."""
        if not self._logged:
            log.info("openai backend: scoring options by %s", self.scoring_method)
            self._logged = True
        if self.scoring_method == "echo":
            return self._score_echo(conversations, options)
        return self._score_top(conversations, options)

    def _score_echo(self, conversations: list[Conversation], options: Options) -> list[list[float]]:
        each = options_for_each(conversations, options)
        texts = [self.render(conv) for conv in conversations]
        prompts = [(t, t + o) for t, opts in zip(texts, each) for o in opts]
        # max_tokens=1: vLLM needs at least one; add_special_tokens: the template has them.
        common = {"max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0.0}
        bodies = [{"prompt": p, **common, "add_special_tokens": False} for _, p in prompts]

        def parse(i: int, base: str, data: Any) -> float:
            text, prompt = prompts[i]
            lp = _first_choice(data).get("logprobs")
            if lp is None:
                msg = "gave no log-probs: does it support echo? use scoring='top_logprobs'"
                raise CaiError(f"{base}/completions {msg}")
            values = lp.get("token_logprobs") if isinstance(lp, dict) else None
            offsets = lp.get("text_offset") if isinstance(lp, dict) else None
            if not (isinstance(values, list) and isinstance(offsets, list)) or (
                len(values) != len(offsets)
            ):
                raise BadAnswer("choices[0].logprobs without token_logprobs and text_offset")
            if not all(v is None or _is_number(v) for v in values) or not all(
                _count(at) is not None for at in offsets
            ):
                raise BadAnswer("choices[0].logprobs with a log-prob or offset not a number")
            generated = _usage(data, 1) or 1
            n_prompt = len(values) - generated  # echoed prompt tokens only
            pairs = zip(values[:n_prompt], offsets[:n_prompt])
            picked = [v for v, at in pairs if v is not None and len(text) <= at < len(prompt)]
            if len(prompt) > len(text) and not picked:
                msg = "did not echo the prompt's log-probs; use scoring='top_logprobs'"
                raise CaiError(f"{base}/completions {msg}")
            return float(sum(picked))

        return regroup(self._post_all("/completions", bodies, parse), each)

    def _score_top(
        self, conversations: list[Conversation], options: list[str]
    ) -> list[list[float]]:
        if options and not isinstance(options[0], str):
            raise CaiError(
                "scoring a whole response (the contrast judge mode) needs the prompt's echoed "
                "log-probs: use scoring='echo' (give a tokenizer) on this server"
            )
        # Trailing whitespace stays with the options: " A" is one token, "is " + "A" is not natural.
        prefix = os.path.commonprefix(options).rstrip() if options else ""
        if any(len(o) == len(prefix) for o in options):
            prefix = ""  # one option is the common prefix itself: score the options' first tokens
        bodies = []
        for conv in conversations:
            if conv and conv[-1]["role"] == "assistant":
                messages = [*conv[:-1], {**conv[-1], "content": conv[-1]["content"] + prefix}]
            else:
                messages = [*conv, {"role": "assistant", "content": prefix}] if prefix else conv
            top = {"max_tokens": 1, "logprobs": True, "top_logprobs": TOP_LOGPROBS}
            bodies.append({"messages": messages, **top, "temperature": 0.0})
            bodies[-1].update(self._continuation(messages))

        def parse(i: int, base: str, data: Any) -> list[float]:
            lp = _first_choice(data).get("logprobs")
            content = lp.get("content") if isinstance(lp, dict) else lp
            if not content:
                raise CaiError(f"{base}/chat/completions gave no top_logprobs: is it supported?")
            first = content[0] if isinstance(content, list) else None
            top = first.get("top_logprobs") if isinstance(first, dict) else None
            if not (top is None or isinstance(top, list)):
                kind = _json_kind(top)
                raise BadAnswer(f"choices[0].logprobs.content[0].top_logprobs that is {kind}")
            entries = [first, *(top or [])]
            if not all(_is_entry(e) for e in entries):
                raise BadAnswer("choices[0].logprobs.content[0] without a token and its logprob")
            candidates: dict[str, float] = {}
            for entry in entries:
                token, value = entry["token"], float(entry["logprob"])
                candidates[token] = max(value, candidates.get(token, -math.inf))
            floor = min(candidates.values()) - math.log(2)
            row = [_top_score(o[len(prefix) :], candidates) for o in options]
            return [floor if s is None else s for s in row]

        return self._post_all("/chat/completions", bodies, parse)
