"""The OpenAI-compatible backend against a misbehaving server (../shared/hostile-cases.md).

A slow drip, 200 answers that are not JSON or lack what an answer needs, and a 50 MB
answer to ``max_tokens 8``: each is a failed attempt, retried, then a ``BackendError``
that names what was wrong; through the CLI, the rows it hit go to ``failed.jsonl``, the
others are kept, and a rerun against a healthy server completes them.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cai.backends.base import SamplingParams
from cai.errors import BackendError, CaiError
from cai.jobs import RowJournal
from tests.openai_server import serve

pytest.importorskip("httpx")

from cai.backends.openai import MIN_BODY_BYTES, OpenAIBackend, body_cap  # noqa: E402

MODEL = "tiny-random"
HI = [[{"role": "user", "content": "Hi"}]]
OPEN = [
    {"role": "user", "content": "Which response is more helpful, (A) or (B)?"},
    {"role": "assistant", "content": "The better response is"},
]
EIGHT = SamplingParams(max_new_tokens=8, temperature=0.0)

TRUNCATED = "200 with truncated JSON, or HTML"
NO_CHOICES = "200 with empty or missing `choices`, `content: 123`"
NULL = "`content: null`"
HUGE = "a 50 MB answer to `max_tokens 8`"
DRIP = "slow drip (1 byte every 2 s), `timeout: 5`"

# (fault, words of the final error, hostile case)
BAD_ANSWERS = [
    ("truncated", "invalid JSON", TRUNCATED),
    ("html", "invalid JSON (50 bytes, starting '<html>", TRUNCATED),
    ("not-object", "a body that is an array, not an object", NO_CHOICES),
    ("no-choices", "no choices", NO_CHOICES),
    ("empty-choices", "an empty choices list", NO_CHOICES),
    ("no-message", "no choices[0].message", NO_CHOICES),
    ("content-int", "choices[0].message.content that is a number", NO_CHOICES),
    ("content-null", "choices[0].message.content null or missing", NULL),
    ("huge:50000000", "a body over the cap of", HUGE),
]
BAD = [
    pytest.param(f, w, id=f.split(":")[0], marks=pytest.mark.hostile(c)) for f, w, c in BAD_ANSWERS
]


@pytest.fixture
def server(tiny_backend):
    with serve(tiny_backend) as s:
        yield s


def client(base_url: str, **kw) -> OpenAIBackend:
    kw = {"backoff": 0.01, "timeout": 10.0, **kw}
    return OpenAIBackend(MODEL, base_url=base_url, **kw)


def one(server, **kw):
    """The first generation for ``HI`` at ``max_tokens 8``."""
    return client(server.base_url, **kw).generate(HI, EIGHT)[0][0]


# ---------------------------------------------------------------------- slow drip


@pytest.mark.hostile(DRIP)
def test_slow_drip_fails_within_its_deadline(server):
    """1 byte every 2 s never trips httpx's per-read timeout of 5 s; the deadline does."""
    server.script = ["drip:2"]
    backend = client(server.base_url, timeout=5, max_retries=0)
    start = time.monotonic()
    pool = ThreadPoolExecutor(1)
    try:  # without a deadline the call would hang until the server stops
        error = pool.submit(backend.generate, HI, EIGHT).exception(timeout=9)
    finally:
        pool.shutdown(wait=False)
    assert error is not None, "the drip was read to its end"
    assert 5 <= time.monotonic() - start < 9
    assert isinstance(error, BackendError)
    assert "no complete answer within the 5 s timeout" in str(error)
    assert server.requests == 1


@pytest.mark.hostile(DRIP)
def test_slow_drip_is_retried_like_a_timeout(server):
    server.script = ["drip:0.2", "ok"]
    start = time.monotonic()
    got = one(server, timeout=1, max_retries=1)
    assert got.text and got.num_tokens > 0
    assert server.requests == 2 and time.monotonic() - start < 5

    server.script = ["drip:0.2"] * 2
    with pytest.raises(BackendError, match="2 attempts; last error: no complete answer within"):
        one(server, timeout=1, max_retries=1)


# ---------------------------------------------------------------------- bad 200 answers


@pytest.mark.parametrize(("fault", "words"), BAD)
def test_a_bad_answer_is_retried(server, fault, words):
    want = one(server)
    server.script = [fault, "ok"]
    got = one(server, max_retries=1)
    assert (got.text, got.num_tokens, got.finish_reason) == (
        want.text,
        want.num_tokens,
        want.finish_reason,
    )
    assert server.requests == 1 + 2


@pytest.mark.parametrize(("fault", "words"), BAD)
def test_a_bad_answer_fails_after_the_retries_naming_what_was_wrong(server, fault, words):
    server.script = [fault] * 3
    with pytest.raises(BackendError) as err:
        one(server, max_retries=2)
    message = str(err.value)
    assert "failed after 3 attempts" in message and words in message, message
    assert "\n" not in message
    assert server.requests == 3


def test_an_empty_answer_is_an_answer(server):
    """ "" with finish_reason "stop" is a legitimate (if useless) answer; only null is not."""
    server.script = ["content-empty"]
    got = one(server)
    assert (got.text, got.num_tokens, got.finish_reason) == ("", 0, "stop")
    assert server.requests == 1


# ---------------------------------------------------------------------- size caps


@pytest.mark.hostile(HUGE)
def test_a_50_mb_answer_is_cut_off_after_its_cap(server):
    server.script = ["huge:50000000"]
    with pytest.raises(BackendError, match=r"HTTP 200 with a body over the cap of \d+ bytes"):
        one(server, max_retries=0)
    assert server.bytes_sent < 10_000_000  # the client hung up long before 50 MB


@pytest.mark.hostile(HUGE)
def test_a_declared_body_over_the_cap_is_not_read(server):
    server.script = ["long:400000"]  # sent with a Content-Length of about 400 kB
    with pytest.raises(BackendError, match=r"HTTP 200 with a body of \d+ bytes, over the cap"):
        one(server, max_retries=0)


@pytest.mark.hostile(HUGE)
def test_a_long_answer_under_the_byte_cap_is_cut_to_max_tokens(server):
    """8 tokens: at most 8 * 64 characters and 8 tokens, cut with finish reason "length"."""
    server.script = ["long:20000"]
    got = one(server)
    assert (got.text, got.num_tokens, got.finish_reason) == ("x" * 512, 8, "length")


def test_the_byte_cap_follows_max_tokens_and_the_echoed_prompt():
    assert body_cap({"max_tokens": 8}) == MIN_BODY_BYTES + 8 * 256
    assert body_cap({"max_tokens": 4096}) == MIN_BODY_BYTES + 4096 * 256
    echo = {"max_tokens": 1, "echo": True, "prompt": "é" * 1000}
    assert body_cap(echo) == MIN_BODY_BYTES + 256 + 2000 * 512


# ---------------------------------------------------------------------- scoring


@pytest.mark.hostile(NO_CHOICES)
@pytest.mark.parametrize("method", ["echo", "top_logprobs"])
def test_scoring_retries_bad_answers_then_names_them(server, method):
    backend = client(server.base_url, scoring=method, max_retries=1,
                     tokenizer=MODEL if method == "echo" else None)  # fmt: skip
    want = backend.score_options([OPEN], [" (A)"])  # one request per call: a known order
    n = server.requests
    server.script = ["bad-logprobs", "ok", "no-choices", "ok"]
    assert backend.score_options([OPEN], [" (A)"]) == want
    assert backend.score_options([OPEN], [" (A)"]) == want
    assert server.requests - n == 4

    server.script = ["bad-logprobs"] * 2
    with pytest.raises(BackendError, match="2 attempts; last error: HTTP 200 with choices"):
        backend.score_options([OPEN], [" (A)"])
    server.script = ["empty-choices"] * 2
    with pytest.raises(BackendError, match="an empty choices list"):
        backend.score_options([OPEN], [" (A)"])


@pytest.mark.parametrize("method", ["echo", "top_logprobs"])
def test_scoring_without_logprobs_fails_at_once(server, method):
    """A well-formed answer without the log-probs asked for: the server lacks the feature,
    and retrying will not add it. One clear error, no retries."""
    backend = client(server.base_url, scoring=method, max_retries=3,
                     tokenizer=MODEL if method == "echo" else None)  # fmt: skip
    server.script = ["no-logprobs"] * 4
    with pytest.raises(CaiError, match="log-?probs") as err:
        backend.score_options([OPEN], [" (A)"])
    assert not isinstance(err.value, BackendError)
    assert server.requests == 1


# ---------------------------------------------------------------------- through the CLI

G = ["generate-revisions", "--model", "tiny-random", "--max-new-tokens", "8", "--no-few-shot"]
G += ["--repetition-penalty", "1.0"]  # the openai backend refuses any other (config default 1.2)
G += ["--chunk-size", "4", "--no-cache", "--backend", "openai", "--prompts"]
POISON = "POISON-PILL"


def _prompts(path: Path) -> Path:
    rows = [
        {"id": f"r{i}", "prompt": f"{POISON} question {i}" if i in (1, 4) else f"question {i}"}
        for i in range(6)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _pairs(path: Path) -> Path:
    rows = [
        {"id": f"p{i}", "prompt": f"{POISON} q{i}" if i in (1, 4) else f"q{i}",
         "chosen": f"good {i}", "rejected": f"bad {i}"}
        for i in range(6)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(path: Path, section: str, timeout: float = 5, retries: int = 1) -> Path:
    path.write_text(f"{section}:\n  max_retries: {retries}\n  timeout: {timeout}\n")
    return path


def _ids(out: Path) -> list[str]:
    rows, _ = RowJournal(out / "rows.jsonl").read()
    return sorted(r["id"] for r in rows)


def _failed(out: Path) -> dict[str, str]:
    lines = (out / "failed.jsonl").read_text().splitlines()
    return {r["id"]: r["error"] for r in map(json.loads, lines)}


def _check_failed_then_rerun(cai, server, args, out, poisoned, kept, words):
    res = cai(*args)
    assert res.code == 2, (res.out, res.err)
    assert "Traceback" not in res.err and "2 of 6 rows failed" in res.err, res.err
    failed = _failed(out)
    assert sorted(failed) == poisoned
    assert all(words in e for e in failed.values()), failed
    assert _ids(out) == kept

    server.rules = []  # the server is healthy again
    res = cai(*args)
    assert res.code == 0, res.err
    assert _ids(out) == sorted(kept + poisoned)
    assert not (out / "failed.jsonl").exists()


CLI_FAULTS = [
    pytest.param("truncated", "invalid JSON", marks=pytest.mark.hostile(TRUNCATED)),
    pytest.param("empty-choices", "an empty choices list", marks=pytest.mark.hostile(NO_CHOICES)),
    pytest.param("content-int", "content that is a number", marks=pytest.mark.hostile(NO_CHOICES)),
    pytest.param("content-null", "content null", marks=pytest.mark.hostile(NULL)),
    pytest.param("huge:50000000", "over the cap", marks=pytest.mark.hostile(HUGE)),
    pytest.param("drip:0.3", "no complete answer within", marks=pytest.mark.hostile(DRIP)),
]


@pytest.mark.parametrize(("fault", "words"), CLI_FAULTS)
def test_revisions_record_the_rows_a_bad_server_failed(cai, server, tmp_path, fault, words):
    out = tmp_path / "out"
    server.rules = [(POISON, fault)]
    drip = fault.startswith("drip")  # each attempt takes its whole 1 s timeout: no retry
    cfg = _config(tmp_path / "c.yaml", "backend", timeout=1 if drip else 5, retries=1 - drip)
    args = [*G, _prompts(tmp_path / "p.jsonl"), "--base-url", server.base_url, "--config", cfg]
    _check_failed_then_rerun(cai, server, [*args, "-o", out], out, ["r1", "r4"],
                             ["r0", "r2", "r3", "r5"], words)  # fmt: skip


@pytest.mark.hostile(NULL)
@pytest.mark.hostile(TRUNCATED)
@pytest.mark.parametrize(("mode", "fault", "words"), [
    ("generate", "content-null", "content null"),
    ("cot", "html", "invalid JSON"),
    ("logprob", "bad-logprobs", "choices[0].logprobs.content[0] without a token"),
])  # fmt: skip
def test_judge_records_the_rows_a_bad_server_failed(cai, server, tmp_path, mode, fault, words):
    out = tmp_path / "out"
    server.rules = [(POISON, fault)]
    cfg = _config(tmp_path / "c.yaml", "judge")
    cfg.write_text(cfg.read_text() + "judge_max_new_tokens: 16\n")  # a short CoT
    args = ["judge", "--prompts", _pairs(tmp_path / "p.jsonl"), "--judge-model", MODEL,
            "--judge-backend", "openai", "--base-url", server.base_url, "--mode", mode,
            "--chunk-size", "4", "--config", cfg, "-o", out]  # fmt: skip
    _check_failed_then_rerun(cai, server, args, out, ["p1", "p4"], ["p0", "p2", "p3", "p5"], words)


@pytest.mark.hostile(HUGE)
def test_revisions_store_a_long_answer_cut_to_max_tokens(cai, server, tmp_path):
    """200 kB answers (under the byte cap) to every turn of two rows: stored cut to 8 * 64
    characters, never whole."""
    out = tmp_path / "out"
    server.rules = [(POISON, "long:200000")]
    args = [*G, _prompts(tmp_path / "p.jsonl"), "--base-url", server.base_url, "-o", out]
    res = cai(*args)
    assert res.code == 0, res.err
    rows, _ = RowJournal(out / "rows.jsonl").read()
    assert len(rows) == 6 and (out / "rows.jsonl").stat().st_size < 100_000
    long = [r for r in rows if r["id"] in ("r1", "r4")]
    assert all(r["revision"] == "x" * 512 for r in long), long
