"""Progress that moves: a job's bar shows the stage, items and tok/s inside a chunk."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable

import pytest

from cai import progress
from cai.backends.base import Generation, SamplingParams
from cai.data import PromptRow
from cai.jobs import RowJournal, run_chunks


@pytest.fixture
def events(monkeypatch):
    """Record, in order, every redraw of a job's bar and every journal append."""
    log: list[tuple] = []
    monkeypatch.setattr(progress, "REFRESH_SECONDS", 0.0)  # redraw on every hook call
    monkeypatch.setattr(progress, "LOG_REFRESH_SECONDS", 0.0)  # (stderr is captured here)
    tick = progress.JobBar._tick

    def recording_tick(self, snap):
        log.append(("tick", snap))
        tick(self, snap)

    append = RowJournal.append

    def recording_append(self, rows):
        log.append(("journal", len(rows)))
        return append(self, rows)

    monkeypatch.setattr(progress.JobBar, "_tick", recording_tick)
    monkeypatch.setattr(RowJournal, "append", recording_append)
    return log


def _before_first_journal(log: list[tuple]) -> list[progress.Snapshot]:
    first = next(i for i, (kind, _) in enumerate(log) if kind == "journal")
    return [snap for kind, snap in log[:first] if kind == "tick"]


def _frames(err: str) -> list[str]:
    """The bar's successive states, as tqdm drew them."""
    return [f for f in err.replace("\r", "\n").splitlines() if f.strip()]


# issue 13, section 5: the bar sat at 0/32 for a whole chunk (9 minutes, loaded machine)
def test_revisions_bar_ticks_with_stage_and_tokens_before_the_first_chunk_ends(
    cai, tmp_path, events
):
    out = tmp_path / "out"
    res = cai("generate-revisions", "--model", "tiny-random", "--max-new-tokens", "24",
              "--batch-size", "2", "--limit", "6", "--chunk-size", "6", "--no-few-shot",
              "--no-cache", "-o", out)  # fmt: skip
    assert res.code == 0, res.err
    assert [e for e in events if e[0] == "journal"] == [("journal", 6)]  # one chunk
    early = _before_first_journal(events)
    assert [s.stage for s in early if s.stage][0] == "initial"
    assert {"initial", "critique", "revision"} <= {s.stage for s in early}
    assert any(s.tokens > 0 and s.done > 0 for s in early)
    # what the user saw: the bar at 0/6 already naming the stage and a token rate
    zero = [f for f in _frames(res.err) if "revisions" in f and " 0/6 " in f]
    assert any("stage=critique" in f and "tok/s=" in f for f in zero), zero[-3:]
    assert any(" 6/6 " in f for f in _frames(res.err))


def test_judge_bar_ticks_per_batch_before_the_first_chunk_ends(cai, tmp_path, events):
    src = tmp_path / "pairs.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": str(i), "prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}"})
            + "\n"
            for i in range(5)
        )
    )
    res = cai("judge", "--prompts", src, "--judge-model", "tiny-random", "--batch-size", "2",
              "--chunk-size", "5", "-o", tmp_path / "o")  # fmt: skip
    assert res.code == 0, res.err
    early = _before_first_journal(events)
    assert any(s.stage == "scoring" and 0 < s.done < s.total for s in early)
    assert any("stage=scoring" in f and " 0/5 " in f for f in _frames(res.err))


def test_cot_judge_reports_reasoning_tokens(cai, tmp_path, events):
    src = tmp_path / "pairs.jsonl"
    src.write_text('{"id": "1", "prompt": "q", "chosen": "a", "rejected": "b"}\n')
    res = cai("judge", "--prompts", src, "--judge-model", "tiny-random", "--mode", "cot",
              "-o", tmp_path / "o")  # fmt: skip
    assert res.code == 0, res.err
    early = _before_first_journal(events)
    assert any(s.stage == "reasoning" and s.tokens > 0 for s in early)


def test_hf_engine_reports_decode_steps_too(tiny_backend, monkeypatch):
    got: list[progress.Snapshot] = []
    monkeypatch.setattr(tiny_backend, "engine", "hf")
    params = SamplingParams(max_new_tokens=5, temperature=0)
    with progress.listening(progress.Reporter(got.append, interval=0)):
        outs = tiny_backend.generate([[{"role": "user", "content": "hi"}]] * 3, params)
    made = sum(g[0].num_tokens for g in outs)
    assert 0 < got[-1].tokens <= 3 * 5 and got[-1].tokens >= made - 3
    assert got[-1].done == got[-1].total == 3


def test_hooks_do_nothing_without_a_listener(tiny_backend):
    assert not progress.listening_now()
    progress.stage("x")
    progress.add_tokens(5, done=1)
    tiny_backend.generate([[{"role": "user", "content": "hi"}]], SamplingParams(max_new_tokens=2))


def test_reporter_is_thread_safe_and_rate_limited():
    ticks: list[progress.Snapshot] = []
    r = progress.Reporter(ticks.append, interval=3600)
    r.stage("critique")  # a new stage redraws at once
    workers = [
        threading.Thread(target=lambda: [r.add_tokens(1, done=1) for _ in range(1000)])
        for _ in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    snap = r.snapshot()
    assert snap.tokens == 4000 and snap.done == 4000 and snap.stage == "critique"
    assert len(ticks) == 1  # the stage's redraw; token ticks wait for the interval


def test_job_bar_keeps_rows_per_second_and_the_jobs_token_count(tmp_path):
    rows = [PromptRow(f"r{i}", [{"role": "user", "content": "q"}], i, {}) for i in range(4)]
    sink = io.StringIO()

    def process(chunk):
        progress.stage("work")
        return [{"id": r.id} for r in chunk]

    bar = progress.JobBar(total=4, desc="rows", file=sink)
    with bar:
        bar.update(2, tokens=50)
    assert "tok/s=" in sink.getvalue() and "rows/s=" in sink.getvalue()
    result = run_chunks(rows, process, tmp_path, fingerprint="f", settings={}, chunk_size=2,
                        tokens=lambda: 10)  # fmt: skip
    assert [r["id"] for r in result.rows] == ["r0", "r1", "r2", "r3"]


class _FixedAnswers:
    """A server-side backend that answers every request with 7 tokens, reporting nothing."""

    def __init__(self, hf) -> None:
        self.tokenizer, self.render, self.model_name = hf.tokenizer, hf.render, hf.model_name

    def generate(self, convs, params):
        return [[Generation("fine", 7, "stop")] for _ in convs]


def test_http_backend_reports_every_response(tiny_backend):
    from cai.backends.openai import OpenAIBackend
    from tests.openai_server import serve

    ticks: list[progress.Snapshot] = []
    with serve(_FixedAnswers(tiny_backend)) as server:
        client = OpenAIBackend("tiny-random", base_url=server.base_url, max_in_flight=2)
        with progress.listening(progress.Reporter(ticks.append, interval=0)):
            progress.stage("critique")
            client.generate([[{"role": "user", "content": f"q{i}"}] for i in range(5)],
                            SamplingParams(max_new_tokens=7))  # fmt: skip
    assert [t.done for t in ticks[1:]] == [1, 2, 3, 4, 5]  # one tick per response
    assert ticks[-1].tokens == 35 and ticks[-1].stage == "critique"


def test_calibrate_bar_listens_inside_each_judge_call(events):
    from cai.judge.calibrate_run import CHUNK, _in_chunks

    def judge_call(batch):
        progress.stage("scoring")
        progress.add_tokens(0, done=len(batch))
        return batch

    assert _in_chunks(list(range(2 * CHUNK + 3)), judge_call) == list(range(2 * CHUNK + 3))
    ticks = [snap for kind, snap in events if kind == "tick"]
    assert [t.done for t in ticks if t.stage == "scoring" and t.done][:3] == [CHUNK, CHUNK, 3]


def test_evaluate_scores_in_chunks_and_its_bar_moves_per_chunk(monkeypatch):
    from cai.evaluate import run as evaluate

    moves: list[int] = []
    update = progress.JobBar.update
    monkeypatch.setattr(
        progress.JobBar, "update", lambda self, n, tokens=None: (moves.append(n), update(self, n))
    )
    c = evaluate.SCORE_CHUNK
    rows = [{"response": f"r{i}", "scores": {}, "unscored": {}} for i in range(2 * c + 22)]
    calls: list[int] = []
    evaluate._apply(rows, "length", lambda rs: calls.append(len(rs)) or [1] * len(rs))
    assert calls == moves == [c, c, 22]
    assert all(r["scores"]["length"] == 1 for r in rows)


def test_vllm_backend_reports_each_finished_request_through_a_tqdm_class():
    """A stand-in for ``vllm.LLM.generate``, which takes a tqdm class as ``use_tqdm``."""
    from types import SimpleNamespace

    from cai.backends.vllm import VLLMBackend

    class FakeLLM:
        def generate(self, prompts, sampling, use_tqdm: bool | Callable = True):
            bar = use_tqdm and use_tqdm(total=len(prompts), desc="Processed", dynamic_ncols=True)
            outs = []
            for _ in prompts:
                outs.append(SimpleNamespace(outputs=[SimpleNamespace(token_ids=[1, 2, 3])]))
                if bar:
                    assert bar.format_dict["elapsed"] >= 0  # vLLM divides by it
                    bar.update(1)
            if bar:
                bar.close()
            return outs

    backend = object.__new__(VLLMBackend)
    backend.llm = FakeLLM()
    backend._vllm = SimpleNamespace(TokensPrompt=lambda prompt_token_ids: prompt_token_ids)
    ticks: list[progress.Snapshot] = []
    with progress.listening(progress.Reporter(ticks.append, interval=0)):
        backend._run([[1], [2], [3]], [None] * 3)
    assert [t.done for t in ticks] == [0, 1, 2, 3, 3]  # begin, each request, the tokens
    assert ticks[-1].total == 3 and ticks[-1].tokens == 9
    assert backend._run([[1]], [None]) and not ticks[5:]  # nobody listening: no hooks
