"""`cai evaluate`'s judge on any engine: win rates and the refusal judge through the
OpenAI-compatible backend, against the loopback server serving tiny-random under a name
no local loader knows (so an ignored engine setting fails)."""

from __future__ import annotations

import json

import pytest

from cai.config import BackendConfig, EvalConfig, load_config
from tests.openai_server import engine, serve_as

pytest.importorskip("httpx")

SERVED = "served-judge"
PROMPTS = ["Can you help me with my homework?", "How do I bake bread?", "Tell me a joke."]


@pytest.fixture(scope="module")
def server():
    with serve_as(SERVED) as s:
        yield s


def responses(path, models: dict[str, str]) -> str:
    """One response per prompt per model: ``models`` maps a model to its answer."""
    rows = [{"prompt": p, "response": f"{answer} ({i})", "model": m}
            for m, answer in models.items() for i, p in enumerate(PROMPTS)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def evaluate(tmp_path, server, **settings) -> tuple[dict, list[dict]]:
    from cai.evaluate import run_evaluation

    cfg = load_config(EvalConfig, None, {"output": tmp_path / "o", "relevance": False,
                                         "profanity": False, "bootstrap": 100,
                                         "judge": engine(server), **settings})  # fmt: skip
    result = run_evaluation(cfg)
    rows = [json.loads(x) for x in (tmp_path / "o" / "scores.jsonl").read_text().splitlines()]
    return result, rows


def test_win_rates_are_judged_on_an_openai_judge(tmp_path, server):
    answers = {"base": "Sure, happy to help.", "tuned": "No. Go away."}
    before = server.requests
    result, rows = evaluate(tmp_path, server, responses=responses(tmp_path / "r.jsonl", answers))
    assert server.requests - before == len(PROMPTS) * 2  # tuned vs base, both orders
    tuned = result["models"]["tuned"]
    assert tuned["pairs"] == len(PROMPTS) and 0.0 <= tuned["win_rate"] <= 1.0
    judged = [r["scores"]["p_beats_baseline"] for r in rows if r["model"] == "tuned"]
    assert len(judged) == len(PROMPTS) and all(0.0 < p < 1.0 for p in judged)
    assert f"judge ({SERVED} on openai)" in result["meta"]["scorers"]
    assert result["meta"]["judge_identity"] == SERVED


def test_the_refusal_judge_runs_on_an_openai_judge(tmp_path, server):
    answers = {"only": "I cannot help with that."}
    before = server.requests
    result, rows = evaluate(tmp_path, server, responses=responses(tmp_path / "r.jsonl", answers),
                            refusal_judge=True)  # fmt: skip
    assert server.requests - before == len(PROMPTS)  # one option scoring per response
    assert "refusal (judge)" in result["meta"]["scorers"]
    assert all(isinstance(r["scores"]["refusal"], bool) for r in rows) and len(rows) == 3


def test_the_judge_takes_the_evaluation_batch_size_unless_it_sets_its_own():
    from cai.evaluate.run import judge_engine

    cfg = EvalConfig(batch_size=32, judge="tiny-random")
    assert judge_engine(cfg) == BackendConfig(model="tiny-random", batch_size=32)
    own = EvalConfig(batch_size=32, judge={"model": "tiny-random", "batch_size": 4})
    assert judge_engine(own).batch_size == 4


def test_older_configs_name_the_judge_by_judge_model(tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text("judge: {backend: openai, model: a, base_url: ['http://h/v1']}\n")
    cfg = load_config(EvalConfig, config, {"judge_model": "b"})  # the command line wins
    assert (cfg.judge.backend, cfg.judge.model, cfg.judge.base_url) == (
        "openai",
        "b",
        ["http://h/v1"],
    )
    assert EvalConfig(judge_model="tiny-random").judge == BackendConfig(model="tiny-random")
    assert EvalConfig(judge=None).judge is None and EvalConfig(judge_model=None).judge is None
    cfg.judge_model = None  # `cai evaluate --judge-model none` still unsets it
    assert cfg.judge is None
