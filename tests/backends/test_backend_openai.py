"""The OpenAI-compatible backend against a loopback server running tiny-random."""

from __future__ import annotations

import importlib
import math
import sys
import time
from dataclasses import replace

import pytest
import torch

from cai.backends import load_backend
from cai.backends.base import SamplingParams
from cai.backends.hf import TransformersBackend
from cai.errors import CaiError
from tests.openai_server import serve

pytest.importorskip("httpx")

from cai.backends.openai import OpenAIBackend  # noqa: E402

MODEL = "tiny-random"
KEY = "sk-test-not-a-real-key-1234"
OPEN = [
    {"role": "user", "content": "Which response is more helpful, (A) or (B)?"},
    {"role": "assistant", "content": "The better response is"},
]
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Write a poem about the sea, please."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
    OPEN,
]


@pytest.fixture(scope="module")
def hf() -> TransformersBackend:
    return TransformersBackend(MODEL, device="cpu")


@pytest.fixture
def server(hf):
    with serve(hf) as s:
        yield s


def client(base_url, **kw) -> OpenAIBackend:
    kw = {"backoff": 0.01, "timeout": 10.0, **kw}
    return OpenAIBackend(MODEL, base_url=base_url, **kw)


def softmax(xs: list[float]) -> list[float]:
    top = max(xs)
    exps = [math.exp(x - top) for x in xs]
    return [e / sum(exps) for e in exps]


# ---------------------------------------------------------------------- generate


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_new_tokens=12, temperature=0.0),
        SamplingParams(max_new_tokens=12, temperature=1.0, seed=5, min_p=0.2),
        SamplingParams(max_new_tokens=10, temperature=1.0, seed=7, n=2),
    ],
    ids=["greedy", "sampled-min-p", "sampled-n2"],
)
def test_generate_matches_transformers(hf, server, params):
    got = client(server.base_url).generate(CONVERSATIONS, params)
    # the server runs one conversation per call, and sample i of n uses seed + i
    seeds = [None if params.seed is None else params.seed + i for i in range(params.n)]
    want = [
        [hf.generate([c], replace(params, n=1, seed=s))[0][0] for s in seeds] for c in CONVERSATIONS
    ]
    assert [[(g.text, g.num_tokens, g.finish_reason) for g in row] for row in got] == [
        [(g.text, g.num_tokens, g.finish_reason) for g in row] for row in want
    ]
    assert server.requests == len(CONVERSATIONS) * params.n
    first = got[0][0]
    assert first.raw["base_url"] == server.base_url and first.raw["id"]


def test_generate_stop_string(hf, server):
    params = SamplingParams(max_new_tokens=16, temperature=1.0, seed=3)
    text = hf.generate([CONVERSATIONS[1]], params)[0][0].text
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop.strip(), text
    params = replace(params, stop=(stop,))
    want = hf.generate([CONVERSATIONS[1]], params)[0][0]
    got = client(server.base_url).generate([CONVERSATIONS[1]], params)[0][0]
    assert (got.text, got.num_tokens, got.finish_reason) == (want.text, want.num_tokens, "stop")
    assert stop not in got.text


def test_more_stop_strings_than_the_api_takes(hf, server):
    """Servers take 4 stop strings; a fifth is still applied, to the answer."""
    params = SamplingParams(max_new_tokens=16, temperature=1.0, seed=3)
    text = hf.generate([CONVERSATIONS[1]], params)[0][0].text
    fifth = text[len(text) // 2 : len(text) // 2 + 3]
    stops = ("\x00a", "\x00b", "\x00c", "\x00d", fifth)
    got = client(server.base_url).generate([CONVERSATIONS[1]], replace(params, stop=stops))
    assert got[0][0].text == text[: text.index(fifth)] and got[0][0].finish_reason == "stop"


def test_min_p_is_sent_only_when_on(hf, server):
    """vLLM and llama.cpp take ``min_p``; the OpenAI API rejects unknown fields."""
    off = SamplingParams(max_new_tokens=4, temperature=1.0, seed=2)
    client(server.base_url).generate([CONVERSATIONS[0]], off)
    assert "min_p" not in server.bodies[-1] and "repetition_penalty" not in server.bodies[-1]
    on = replace(off, min_p=0.99)
    got = client(server.base_url).generate([CONVERSATIONS[0]], on)[0][0]
    assert server.bodies[-1]["min_p"] == 0.99
    greedy = replace(off, temperature=0.0)  # min_p 0.99 keeps the top token only
    assert got.text == hf.generate([CONVERSATIONS[0]], greedy)[0][0].text


def test_repetition_penalty_is_refused_before_any_request(server):
    """A server's repetition_penalty means something else (vLLM's counts the prompt)."""
    params = SamplingParams(max_new_tokens=4, repetition_penalty=1.2)
    with pytest.raises(CaiError) as err:
        client(server.base_url).generate(CONVERSATIONS, params)
    message = str(err.value)
    assert server.requests == 0 and "\n" not in message
    assert "repetition_penalty 1.2" in message and "prompt" in message
    assert "set repetition_penalty to 1.0" in message and "min_p" in message
    assert "transformers backend" in message
    with pytest.raises(CaiError):
        client(server.base_url).generate([], params)
    assert server.requests == 0


# ---------------------------------------------------------------------- scoring


def test_echo_scoring_matches_transformers(hf, server, caplog):
    backend = client(server.base_url, tokenizer=MODEL)
    assert backend.scoring_method == "echo"
    options = [" (A)", " (B)"]
    conversations = [OPEN, CONVERSATIONS[0]]
    with caplog.at_level("INFO", logger="cai"):
        got = backend.score_options(conversations, options)
        backend.score_options(conversations, options)
    want = hf.score_options(conversations, options)
    for g_row, w_row in zip(got, want):
        assert g_row == pytest.approx(w_row, abs=1e-4)
    assert backend.scoring_method == "echo"
    assert sum("scoring options by echo" in r.message for r in caplog.records) == 1
    assert all(p == "/v1/completions" for p in server.paths)


def _top_tokens(hf, conversation, k=20):
    """The model's top-k next tokens (id, text) after ``conversation``."""
    ids = hf.encode([conversation])[0]
    with torch.inference_mode():
        logits = hf.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    lp = torch.log_softmax(logits, -1)
    top = torch.topk(lp, k)
    return ids, [(i, hf.tokenizer.decode([i])) for i in top.indices.tolist()], float(top.values[-1])


def test_top_logprobs_scoring(hf, server):
    """What is exactly comparable: with options " (X)" and " (Y)", the method scores the
    token after the common prefix " (", so each score must equal transformers' log-prob of
    option "X" after the answer extended by " (" -- when X is one token there, and in the
    top 20. On a random model "A" and "B" are not, so X and Y are picked from the top 20."""
    extended = [*OPEN[:-1], {"role": "assistant", "content": OPEN[-1]["content"] + " ("}]
    ctx, top, lowest = _top_tokens(hf, extended)
    text = hf.render(extended)
    texts = [t for _, t in top]
    picked = []
    for tid, t in top:
        longer = [u for u in texts if len(u) > len(t) and (t + ")").startswith(u)]
        one_token = hf.option_token_ids(ctx, text, t) == [tid]
        if t.isalpha() and t.isascii() and one_token and not longer:
            if not picked or picked[0][0] != t[0]:
                picked.append(t)
        if len(picked) == 2:
            break
    assert len(picked) == 2, texts
    options = [f" ({t})" for t in picked] + [" (qqzzxq)"]  # the last is in no top 20

    backend = client(server.base_url)
    assert backend.scoring_method == "top_logprobs"
    got = backend.score_options([OPEN], options)[0]
    assert backend.scoring_method == "top_logprobs"
    assert server.requests == 1 and server.paths == ["/v1/chat/completions"]

    want = hf.score_options([extended], picked)[0]
    assert got[:2] == pytest.approx(want, abs=1e-4)
    assert softmax(got[:2]) == pytest.approx(softmax(want), abs=1e-3)
    assert got[2] == pytest.approx(lowest - math.log(2), abs=1e-4)  # the documented floor


def test_auto_scoring_without_tokenizer(server):
    assert client(server.base_url).scoring_method == "top_logprobs"
    assert client(server.base_url, tokenizer=MODEL).scoring_method == "echo"
    with pytest.raises(CaiError, match="tokenizer"):
        client(server.base_url, scoring="echo")
    with pytest.raises(CaiError, match="scoring"):
        client(server.base_url, scoring="magic")


# ---------------------------------------------------------------------- HTTP


def test_round_robin_over_two_servers(hf):
    params = SamplingParams(max_new_tokens=4, temperature=0.0)
    with serve(hf) as a, serve(hf) as b:
        for base_url in ([a.base_url, b.base_url], f"{a.base_url}, {b.base_url}/"):
            out = client(base_url).generate(CONVERSATIONS, params)
            assert len(out) == len(CONVERSATIONS)
        assert a.requests > 0 and b.requests > 0
        assert a.requests + b.requests == 2 * len(CONVERSATIONS)


def test_api_key_sent_and_hidden(server, monkeypatch):
    monkeypatch.setenv("CAI_TEST_KEY", KEY)
    backend = client(server.base_url, api_key_env="CAI_TEST_KEY")
    backend.generate([CONVERSATIONS[0]], SamplingParams(max_new_tokens=2))
    assert server.auth_headers == [f"Bearer {KEY}"]
    assert KEY not in repr(backend)
    monkeypatch.delenv("CAI_TEST_KEY")
    client(server.base_url, api_key_env="CAI_TEST_KEY").generate(
        [CONVERSATIONS[0]], SamplingParams(max_new_tokens=2)
    )
    assert server.auth_headers[-1] is None


def test_retries_429_and_500(server):
    server.script = ["429", "500", "ok"]
    out = client(server.base_url).generate([CONVERSATIONS[0]], SamplingParams(max_new_tokens=3))
    assert out[0][0].num_tokens > 0
    assert server.requests == 3


def test_retry_after_is_honoured(server):
    server.script = ["429:1", "ok"]
    start = time.monotonic()
    client(server.base_url).generate([CONVERSATIONS[0]], SamplingParams(max_new_tokens=2))
    assert time.monotonic() - start >= 0.9
    assert server.requests == 2


def test_retries_timeout_and_dropped_connection(server):
    server.script = ["hang:20", "drop", "ok"]
    start = time.monotonic()
    out = client(server.base_url, timeout=0.5).generate(
        [CONVERSATIONS[0]], SamplingParams(max_new_tokens=3)
    )
    assert out[0][0].num_tokens > 0
    assert server.requests == 3
    assert time.monotonic() - start < 10


def test_gives_up_after_retries_without_leaking_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.script = ["500"] * 10
    backend = client(server.base_url, max_retries=2)
    with pytest.raises(CaiError) as err:
        backend.generate([CONVERSATIONS[0]], SamplingParams(max_new_tokens=2))
    assert server.requests == 3
    message = str(err.value)
    assert server.base_url in message and "500" in message and "3 attempts" in message
    assert KEY not in message and KEY not in repr(err.value.__cause__)


def test_connection_refused_gives_up(hf):
    with serve(hf) as s:
        url = s.base_url
    with pytest.raises(CaiError, match="ConnectError"):
        client(url, max_retries=1).generate([CONVERSATIONS[0]], SamplingParams(max_new_tokens=2))


def test_other_4xx_fails_at_once(server):
    backend = OpenAIBackend("no-such-model", base_url=server.base_url, backoff=0.01)
    with pytest.raises(CaiError, match=r"HTTP 404: The model `no-such-model` does not exist"):
        backend.generate([CONVERSATIONS[0]], SamplingParams(max_new_tokens=2))
    assert server.requests == 1


def test_called_from_a_running_event_loop(server):
    import asyncio

    async def inside() -> list:
        return client(server.base_url).generate(
            [CONVERSATIONS[0]], SamplingParams(max_new_tokens=2)
        )

    assert asyncio.run(inside())[0][0].num_tokens > 0


# ---------------------------------------------------------------------- optional extra


def test_missing_httpx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "httpx", None)
    monkeypatch.delitem(sys.modules, "cai.backends.openai")
    module = importlib.import_module("cai.backends.openai")  # importing needs no httpx
    with pytest.raises(CaiError, match=r"cai\[openai\]"):
        module.OpenAIBackend(MODEL)
    with pytest.raises(CaiError, match=r"cai\[openai\]"):
        load_backend("openai", MODEL)


def test_vllm_serve_wrapper_asks_vllm_cpu_for_whole_prefills():
    from cai.backends.vllm_serve import cpu_args

    base = ["/m", "--max-model-len", "4096"]
    assert cpu_args(base, "/m") == [*base, "--no-enable-chunked-prefill",
                                    "--max-num-batched-tokens", "4096"]  # fmt: skip
    mine = [*base, "--enable-chunked-prefill"]
    assert cpu_args(mine, "/m") == mine  # the user's choice wins


def test_concurrent_chunks_write_every_row_once_with_the_same_answers(hf, tmp_path):
    """generate-revisions on a server with chunks in flight at once: every row once, each
    identical to the sequential run's (row seeds, not batch order, decide the samples)."""
    from cai.config import ReviseConfig, load_config
    from cai.jobs import RowJournal
    from cai.revise import run_revisions

    def run(out, **job):
        with serve(hf) as s:
            cfg = load_config(ReviseConfig, overrides={
                "prompts": "red-team", "limit": 7, "output": out, "no_cache": True,
                "backend": {"backend": "openai", "model": MODEL, "base_url": [s.base_url]},
                "sampling": {"max_new_tokens": 6, "seed": 3, "repetition_penalty": 1.0},
                **job})  # fmt: skip
            run_revisions(cfg)
            peak = s.peak_in_flight
        rows, _ = RowJournal(out / "rows.jsonl").read()
        return {r["id"]: r["revision"] for r in rows}, [r["id"] for r in rows], peak

    sequential, _, one = run(tmp_path / "seq", chunk_size=1)
    together, ids, several = run(tmp_path / "par", chunk_size=1, concurrent_chunks=3)
    assert one == 1 and several > 1  # one-row chunks: any overlap is between chunks
    assert len(ids) == len(set(ids)) == 7
    assert together == sequential
