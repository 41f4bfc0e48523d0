"""A small OpenAI-compatible HTTP server for tests, backed by a real ``TransformersBackend``.

Stdlib only (``ThreadingHTTPServer`` on 127.0.0.1, a free port), run in a background
thread. Endpoints:

- ``POST /v1/chat/completions``: generation through ``backend.generate`` (n=1,
  max_tokens, temperature, top_p, min_p, seed, stop, repetition_penalty: cai's meaning,
  since the backend underneath is cai's), or, with
  ``logprobs``/``top_logprobs`` and ``max_tokens=1``, the next-token log-probs from one
  forward pass over ``backend.render(messages)``. Like vLLM, an open final assistant
  message is continued only with ``continue_final_message: true,
  add_generation_prompt: false``; any other rendering that differs from
  ``backend.render`` is refused with a 400, so client mistakes show up.
- ``POST /v1/completions`` with ``echo`` and ``logprobs``: the prompt's token log-probs
  (null first), tokens and character offsets, plus one greedy generated token.
- ``GET /v1/models``.

``serve_as(name)`` serves tiny-random under a name no local loader knows, and
``engine(server)`` gives the ``BackendConfig`` fields of a cai client for it: a test that
passes with them proves that the engine setting was used.

Fault injection: ``script`` is a list of actions consumed one per request (then "ok"):
``"ok"``, an HTTP status such as ``"429"`` or ``"500"`` (``"429:2"`` adds
``Retry-After: 2``), ``"hang:SECONDS"`` (answer nothing, then close) and ``"drop"``
(close without answering). ``rules`` is a list of ``(text, action)``: a request whose
raw body contains ``text`` gets ``action`` every time, before the script is consumed
(so a row whose prompt holds a marker fails at every turn while the others go through).
``requests`` counts requests, ``peak_in_flight`` the most answered at once,
``auth_headers`` records each request's Authorization header and ``bodies`` each JSON
request body (None if it was not JSON).

Misbehaving 200 answers (the probe's hostile server):

- ``"drip:SECONDS"``: headers at once, then the body one byte every SECONDS;
- ``"huge:BYTES"``: a JSON answer of BYTES bytes, streamed without Content-Length
  (``bytes_sent`` counts what the client accepted before it hung up);
- ``"truncated"``, ``"html"``, ``"not-object"``: the real answer cut in half, an HTML
  page, a JSON array;
- ``"no-choices"``, ``"empty-choices"``, ``"no-message"``, ``"content-int"``,
  ``"content-null"``, ``"content-empty"``, ``"no-logprobs"``, ``"bad-logprobs"``,
  ``"long:CHARS"``: the real answer, altered so (``long`` puts CHARS characters in the
  text and claims as many completion tokens).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch

from cai.backends.base import SamplingParams


def _error(status: int, message: str) -> tuple[int, dict]:
    return status, {"error": {"message": message, "type": "BadRequestError", "code": status}}


class FakeOpenAIServer:
    """Serves ``backend`` (a ``TransformersBackend``) over an OpenAI-compatible API."""

    def __init__(self, backend: Any, script: list[str] | None = None) -> None:
        self.backend = backend
        self.script = list(script or [])
        self.rules: list[tuple[str, str]] = []
        self.requests = 0
        self.bytes_sent = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.paths: list[str] = []
        self.auth_headers: list[str | None] = []
        self.bodies: list[dict | None] = []
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()  # one forward pass or generate at a time
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.app = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def take(self, path: str, auth: str | None, raw: bytes = b"") -> str:
        """Count a request and return its action: a matching rule's, else the script's."""
        with self._lock:
            self.requests += 1
            self.paths.append(path)
            self.auth_headers.append(auth)
            try:
                self.bodies.append(json.loads(raw) if raw else None)
            except ValueError:
                self.bodies.append(None)
            for text, action in self.rules:
                if text.encode() in raw:
                    return action
            return self.script.pop(0) if self.script else "ok"

    # ------------------------------------------------------------------ endpoints

    def get(self, path: str) -> tuple[int, dict]:
        if path.rstrip("/") == "/v1/models":
            model = {"id": self.backend.model_name, "object": "model", "owned_by": "cai-tests"}
            return 200, {"object": "list", "data": [model]}
        return _error(404, f"no route {path}")

    def handle(self, path: str, body: dict) -> tuple[int, dict]:
        if body.get("model") != self.backend.model_name:
            return _error(404, f"The model `{body.get('model')}` does not exist.")
        if path == "/v1/chat/completions":
            return self.chat(body)
        if path == "/v1/completions":
            return self.completions(body)
        return _error(404, f"no route {path}")

    def _logprobs(self, ids: list[int]) -> torch.Tensor:
        """Log-softmax over the vocabulary at every position of ``ids``."""
        b = self.backend
        with self._model_lock, torch.inference_mode():
            logits = b.model(input_ids=torch.tensor([ids], device=b.device)).logits[0].float()
        return torch.log_softmax(logits, dim=-1).cpu()

    def _entry(self, token_id: int, logprob: float) -> dict:
        token = self.backend.tokenizer.decode([token_id])
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    def _reply(self, obj: str, choice: dict, prompt_tokens: int, completion_tokens: int) -> dict:
        return {
            "id": f"{obj}-{uuid.uuid4().hex[:12]}",
            "object": obj,
            "created": int(time.time()),
            "model": self.backend.model_name,
            "choices": [{"index": 0, **choice}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def chat(self, body: dict) -> tuple[int, dict]:
        b = self.backend
        messages = body["messages"]
        cont = bool(body.get("continue_final_message", False))
        gen_prompt = bool(body.get("add_generation_prompt", True))
        if cont and gen_prompt:
            return _error(400, "continue_final_message and add_generation_prompt are exclusive")
        text = b.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=gen_prompt, continue_final_message=cont
        )
        if text != b.render(messages):
            return _error(400, "rendering differs from TransformersBackend.render; check the flags")
        if body.get("n", 1) != 1:
            return _error(400, "this test server supports n=1 only")
        max_tokens = int(body.get("max_tokens") or 16)
        prompt_ids = b.tokenizer(text, add_special_tokens=False)["input_ids"]
        if body.get("logprobs"):
            if max_tokens != 1:
                return _error(400, "this test server supports logprobs with max_tokens=1 only")
            lp = self._logprobs(prompt_ids)[-1]
            k = int(body.get("top_logprobs") or 0)
            top = torch.topk(lp, max(k, 1)).indices.tolist()
            content = self._entry(top[0], float(lp[top[0]]))
            content["top_logprobs"] = [self._entry(i, float(lp[i])) for i in top[:k]]
            choice = {
                "message": {"role": "assistant", "content": content["token"]},
                "logprobs": {"content": [content]},
                "finish_reason": "length",
            }
            return 200, self._reply("chat.completion", choice, len(prompt_ids), 1)
        stop = body.get("stop") or []
        if isinstance(stop, list) and len(stop) > 4:  # as vLLM's and OpenAI's servers do
            return _error(400, "body.stop: List should have at most 4 items")
        params = SamplingParams(
            max_new_tokens=max_tokens,
            temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)),
            min_p=float(body.get("min_p", 0.0)),
            repetition_penalty=float(body.get("repetition_penalty", 1.0)),
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            seed=body.get("seed"),
        )
        with self._model_lock:
            gen = b.generate([messages], params)[0][0]
        choice = {
            "message": {"role": "assistant", "content": gen.text},
            "logprobs": None,
            "finish_reason": gen.finish_reason,
        }
        return 200, self._reply("chat.completion", choice, len(prompt_ids), gen.num_tokens)

    def completions(self, body: dict) -> tuple[int, dict]:
        tok = self.backend.tokenizer
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            return _error(400, "this test server takes one string prompt")
        if not body.get("echo") or body.get("logprobs") is None or body.get("max_tokens") != 1:
            return _error(400, "this test server supports echo=true, logprobs, max_tokens=1 only")
        enc = tok(
            prompt,
            add_special_tokens=bool(body.get("add_special_tokens", True)),
            return_offsets_mapping=True,
        )
        ids, offsets = enc["input_ids"], [start for start, _ in enc["offset_mapping"]]
        lp = self._logprobs(ids)
        k = int(body["logprobs"])
        generated = int(lp[-1].argmax())
        token_logprobs: list[float | None] = [None]
        top_logprobs: list[dict | None] = [None]
        for pos in range(1, len(ids) + 1):
            row = lp[pos - 1]
            target = ids[pos] if pos < len(ids) else generated
            token_logprobs.append(float(row[target]))
            top = torch.topk(row, max(k, 1)).indices.tolist()[:k]
            top_logprobs.append({tok.decode([i]): float(row[i]) for i in [*top, target]})
        gen_text = tok.decode([generated])
        logprobs = {
            "tokens": [tok.decode([i]) for i in ids] + [gen_text],
            "token_logprobs": token_logprobs,
            "top_logprobs": top_logprobs,
            "text_offset": offsets + [len(prompt)],
        }
        choice = {"text": prompt + gen_text, "logprobs": logprobs, "finish_reason": "length"}
        return 200, self._reply("text_completion", choice, len(ids), 1)


def _misbehave(action: str, payload: dict) -> tuple[bytes, str]:
    """The body (and its content type) that ``action`` makes of a real 200 answer."""
    name, _, arg = action.partition(":")
    if name == "truncated":
        data = json.dumps(payload).encode()
        return data[: len(data) // 2], "application/json"
    if name == "html":
        return b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"
    if name == "not-object":
        return json.dumps(["not", "an", "object"]).encode(), "application/json"
    payload = json.loads(json.dumps(payload))  # a deep copy
    choice = payload["choices"][0]
    if name == "no-choices":
        del payload["choices"]
    elif name == "empty-choices":
        payload["choices"] = []
    elif name == "no-message":
        del choice["message"]
    elif name in ("content-int", "content-null", "content-empty"):
        choice["message"]["content"] = {"content-int": 123, "content-null": None}.get(name, "")
        if name == "content-empty":
            choice["finish_reason"] = "stop"
            payload["usage"]["completion_tokens"] = 0
    elif name == "no-logprobs":
        choice["logprobs"] = None
    elif name == "bad-logprobs":
        if "content" in (choice["logprobs"] or {}):
            choice["logprobs"]["content"][0]["logprob"] = "high"
        else:
            choice["logprobs"]["token_logprobs"] = "high"
    elif name == "long":
        if "message" in choice:
            choice["message"]["content"] = "x" * int(arg)
        else:
            choice["text"] = "x" * int(arg)
        choice["finish_reason"] = "stop"
        payload["usage"]["completion_tokens"] = int(arg)
    else:
        raise ValueError(f"unknown fault action {action!r}")
    return json.dumps(payload).encode(), "application/json"


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(
        self,
        status: int,
        payload: dict | bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout)

    def do_GET(self) -> None:
        self._send(*self.server.app.get(self.path))

    def do_POST(self) -> None:
        app: FakeOpenAIServer = self.server.app
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        action = app.take(self.path, self.headers.get("Authorization"), raw)
        if action.startswith("hang:"):
            app._stopping.wait(float(action.split(":", 1)[1]))
            self.close_connection = True
            return
        if action == "drop":
            self.close_connection = True
            return
        if action.startswith("drip:"):
            self._drip(float(action.split(":", 1)[1]))
            return
        if action.startswith("huge:"):
            self._huge(int(action.split(":", 1)[1]))
            return
        if action.partition(":")[0].isdigit():
            code, _, retry_after = action.partition(":")
            headers = {"Retry-After": retry_after} if retry_after else None
            self._send(int(code), {"error": {"message": f"injected HTTP {code}"}}, headers)
            return
        with app._lock:
            app.in_flight += 1
            app.peak_in_flight = max(app.peak_in_flight, app.in_flight)
        try:
            status, payload = app.handle(self.path, json.loads(raw or b"{}"))
        except Exception as e:  # a test server: report, do not die
            status, payload = _error(500, f"{type(e).__name__}: {e}")
        finally:
            with app._lock:
                app.in_flight -= 1
        if action != "ok" and status == 200:
            data, content_type = _misbehave(action, payload)
            self._send(status, data, content_type=content_type)
            return
        self._send(status, payload)

    def _drip(self, interval: float) -> None:
        """A 200 whose body comes one byte every ``interval`` seconds."""
        app: FakeOpenAIServer = self.server.app
        data = json.dumps({"choices": [{"message": {"content": "slow"}}]}).encode()
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            for i in range(len(data)):
                if app._stopping.wait(interval):
                    return
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up

    def _huge(self, size: int) -> None:
        """A 200 JSON answer of about ``size`` bytes, without Content-Length."""
        app: FakeOpenAIServer = self.server.app
        head, tail = b'{"choices": [{"message": {"role": "assistant", "content": "', b'"}}]}'
        block = b"A" * 65536
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(head)
            left = size - len(head) - len(tail)
            while left > 0 and not app._stopping.is_set():
                piece = block[:left]
                self.wfile.write(piece)
                with app._lock:
                    app.bytes_sent += len(piece)
                left -= len(piece)
            self.wfile.write(tail)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up


class FaultProxy(FakeOpenAIServer):
    """The same fault injection in front of a real server (``vllm serve``) at ``upstream``.

    Requests whose scripted action is "ok" are forwarded unchanged, and the real
    server's answer is passed back.
    """

    def __init__(self, upstream: str, script: list[str] | None = None) -> None:
        super().__init__(None, script)
        self.upstream = upstream.rstrip("/").removesuffix("/v1")

    def _forward(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.upstream + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def get(self, path: str) -> tuple[int, dict]:
        return self._forward("GET", path, None)

    def handle(self, path: str, body: dict) -> tuple[int, dict]:
        return self._forward("POST", path, body)


@contextmanager
def serve(backend: Any, script: list[str] | None = None) -> Iterator[FakeOpenAIServer]:
    """Start a ``FakeOpenAIServer`` for ``backend`` and stop it afterwards."""
    with FakeOpenAIServer(backend, script) as server:
        yield server


@contextmanager
def serve_as(name: str, model: str = "tiny-random") -> Iterator[FakeOpenAIServer]:
    """Serve ``model`` (transformers, on the CPU) under the name ``name``, which no local
    loader knows: a caller that ignored its engine setting and loaded ``name`` in-process
    would fail, so a test that passes proves the requests went to this server."""
    from cai.backends.hf import TransformersBackend

    backend = TransformersBackend(model, device="cpu")
    backend.model_name = name
    with serve(backend) as server:
        yield server


def engine(server: FakeOpenAIServer, **options: Any) -> dict:
    """The fields of a cai ``BackendConfig`` that talks to ``server`` (the openai backend)."""
    return {"backend": "openai", "model": server.backend.model_name,
            "base_url": [server.base_url], "timeout": 30.0, **options}  # fmt: skip
