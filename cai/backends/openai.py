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

An open final assistant message is continued with vLLM's extra fields
``continue_final_message`` and ``add_generation_prompt``; servers that reject unknown
fields (OpenAI itself) then answer 400, which fails loudly rather than scoring wrongly.

``"auto"`` picks ``"echo"`` when a tokenizer is given, else ``"top_logprobs"``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import itertools
import logging
import math
import os
import random
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from cai import progress
from cai.backends.base import (
    Conversation,
    Generation,
    SamplingParams,
    cut_at_stop,
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


def _server_message(resp: httpx.Response) -> str:
    """The error message from an OpenAI, vLLM or TGI error body, else the raw text."""
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:500].strip() or resp.reason_phrase
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        err = err.get("message") or err.get("detail") or err
    return str(err)[:500]


def _retry_after(resp: httpx.Response) -> float | None:
    """Seconds asked for by a Retry-After header (number or HTTP date), bounded."""
    value = resp.headers.get("retry-after")
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
        timeout: seconds per request.
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

    async def _post(
        self, client: Any, sem: asyncio.Semaphore, path: str, body: dict
    ) -> tuple[str, dict]:
        """POST with retries; returns the base URL that answered and the JSON body."""
        httpx = self._httpx
        last = ""
        for attempt in range(self.max_retries + 1):
            base = next(self._urls)
            url, wait = base + path, None
            async with sem:
                try:
                    resp = await client.post(url, json=body)
                except httpx.TransportError as e:  # connection errors and timeouts
                    last = f"{type(e).__name__}: {e}".rstrip(": ")
                else:
                    if resp.status_code < 400:
                        try:
                            return base, progress.response(resp.json())  # the job's bar
                        except ValueError:
                            raise CaiError(f"{url} answered with invalid JSON") from None
                    message = self._redact(_server_message(resp))
                    if resp.status_code != 429 and resp.status_code < 500:
                        raise CaiError(f"{url} answered HTTP {resp.status_code}: {message}")
                    last, wait = f"HTTP {resp.status_code}: {message}", _retry_after(resp)
            if attempt < self.max_retries:
                delay = self.backoff * 2**attempt * (1 + 0.25 * random.random())
                await asyncio.sleep(delay if wait is None else wait)
        tries = self.max_retries + 1
        raise BackendError(f"{url} failed after {tries} attempts; last error: {self._redact(last)}")

    def _post_all(self, path: str, bodies: list[dict]) -> list[tuple[str, dict]]:
        """POST every body (plus the model name) concurrently; answers in the same order."""
        httpx = self._httpx
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        bodies = [{"model": self.model_name, **b} for b in bodies]

        async def main() -> list[tuple[str, dict]]:
            sem = asyncio.Semaphore(self.max_in_flight)
            limits = httpx.Limits(max_connections=self.max_in_flight)
            kw = {"timeout": self.timeout, "headers": headers, "limits": limits}
            async with httpx.AsyncClient(**kw) as client:
                return list(
                    await asyncio.gather(*(self._post(client, sem, path, b) for b in bodies))
                )

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
        """``params.n`` answers per conversation, one request each (seed + i) for exact counts."""
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
                if params.repetition_penalty != 1.0:
                    body["repetition_penalty"] = params.repetition_penalty
                bodies.append(body)
        answers = iter(self._post_all("/chat/completions", bodies))
        return [
            [self._generation(*next(answers), params.stop) for _ in range(params.n)]
            for _ in conversations
        ]

    @staticmethod
    def _generation(base: str, data: dict, stops: tuple[str, ...]) -> Generation:
        choice = data["choices"][0]
        text, stopped = cut_at_stop(choice["message"].get("content") or "", stops)
        reason = FINISH_REASONS.get(choice.get("finish_reason") or "", "stop")
        reason = "stop" if stopped else reason
        tokens = int((data.get("usage") or {}).get("completion_tokens") or 0)
        return Generation(text, tokens, reason, raw={"id": data.get("id"), "base_url": base})

    def score_options(
        self, conversations: list[Conversation], options: list[str]
    ) -> list[list[float]]:
        """Log-probability of each option continuing each conversation (see the module docs)."""
        if not self._logged:
            log.info("openai backend: scoring options by %s", self.scoring_method)
            self._logged = True
        if self.scoring_method == "echo":
            return self._score_echo(conversations, options)
        return self._score_top(conversations, options)

    def _score_echo(
        self, conversations: list[Conversation], options: list[str]
    ) -> list[list[float]]:
        texts = [self.render(conv) for conv in conversations]
        prompts = [(t, t + o) for t in texts for o in options]
        # max_tokens=1: vLLM needs at least one; add_special_tokens: the template has them.
        common = {"max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0.0}
        bodies = [{"prompt": p, **common, "add_special_tokens": False} for _, p in prompts]
        scores = []
        for (base, data), (text, prompt) in zip(self._post_all("/completions", bodies), prompts):
            lp = data["choices"][0]["logprobs"]
            generated = int((data.get("usage") or {}).get("completion_tokens") or 1)
            n_prompt = len(lp["token_logprobs"]) - generated  # echoed prompt tokens only
            pairs = zip(lp["token_logprobs"][:n_prompt], lp["text_offset"][:n_prompt])
            picked = [v for v, at in pairs if v is not None and len(text) <= at < len(prompt)]
            if len(prompt) > len(text) and not picked:
                msg = "did not echo the prompt's log-probs; use scoring='top_logprobs'"
                raise CaiError(f"{base}/completions {msg}")
            scores.append(float(sum(picked)))
        k = len(options)
        return [scores[i * k : (i + 1) * k] for i in range(len(conversations))]

    def _score_top(
        self, conversations: list[Conversation], options: list[str]
    ) -> list[list[float]]:
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
        results = []
        for base, data in self._post_all("/chat/completions", bodies):
            content = ((data["choices"][0].get("logprobs") or {}).get("content") or [None])[0]
            if not content:
                raise CaiError(f"{base}/chat/completions gave no top_logprobs: is it supported?")
            candidates: dict[str, float] = {}
            for entry in [content, *(content.get("top_logprobs") or [])]:
                token, value = entry["token"], float(entry["logprob"])
                candidates[token] = max(value, candidates.get(token, -math.inf))
            floor = min(candidates.values()) - math.log(2)
            row = [_top_score(o[len(prefix) :], candidates) for o in options]
            results.append([floor if s is None else s for s in row])
        return results
