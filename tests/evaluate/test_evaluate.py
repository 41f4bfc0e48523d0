"""`cai evaluate`: generate or read responses, score them, judge win rates, write the report.

The scorers themselves are tested in tests/scorers/.
"""

from __future__ import annotations

import json
import shutil

import pytest

from cai.config import EvalConfig, load_config
from cai.errors import CaiError


def test_a_failing_scorer_marks_rows_unscored_and_goes_on():
    from cai.evaluate.run import _apply

    rows = [{"response": t, "scores": {}, "unscored": {}} for t in ["fine", "", "boom", "ok"]]

    def fragile(rs):
        if any(r["response"] == "boom" for r in rs):
            raise ValueError("cannot score boom")
        return [len(r["response"]) for r in rs]

    _apply(rows, "length", fragile)
    assert [r["scores"].get("length") for r in rows] == [4, None, None, 2]
    assert rows[1]["unscored"] == {"length": "empty response"}
    assert "cannot score boom" in rows[2]["unscored"]["length"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from cai.evaluate import run_evaluation
    from cai.models import resolve_model

    d = tmp_path_factory.mktemp("eval")
    other = d / "tiny-copy"
    shutil.copytree(resolve_model("tiny-random"), other)
    cfg = load_config(
        EvalConfig,
        None,
        {
            "models": ["tiny-random", str(other)],
            "limit": 3,
            "samples": 2,
            "output": d / "out",
            "judge_model": "tiny-random",
            "sampling": {"max_new_tokens": 8},
        },
    )
    return run_evaluation(cfg), d / "out"


def test_evaluate_writes_every_score_a_table_and_plots(report):
    result, out = report
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * (3 + 3) * 2  # models × (red-team + helpful prompts) × samples
    assert {r["sample"] for r in rows} == {0, 1}
    # Every non-empty response is scored; only empty ones are unscored, and say so.
    for r in rows:
        if r["response"].strip():
            assert "toxic" in r["scores"] and "refusal" in r["scores"], r
        else:
            assert r["unscored"]["toxicity"] == "empty response", r
    assert sum("toxic" in r["scores"] for r in rows) >= len(rows) // 2
    metrics = json.loads((out / "metrics.json").read_text())["models"]
    name, copy = next((n, m) for n, m in metrics.items() if n != "tiny-random")
    # The win rate is the judge's verdicts on the copy's first samples, one per prompt.
    judged = [
        r["scores"]["p_beats_baseline"] for r in rows if r["model"] == name and not r["sample"]
    ]
    assert copy["pairs"] == len(judged) == 3 + 3
    wins = [1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0 for p in judged]
    assert copy["win_rate"] == pytest.approx(sum(wins) / len(wins))
    assert copy["mean_p"] == pytest.approx(sum(judged) / len(judged))
    lo, hi = copy["win_rate_ci"]
    assert lo <= copy["win_rate"] <= hi
    assert "win_rate" not in metrics["tiny-random"]  # the baseline is not judged against itself
    assert not any("p_beats_baseline" in r["scores"] for r in rows if r["model"] == "tiny-random")
    assert metrics["tiny-random"]["expected_max_toxicity"] is not None
    assert "| tiny-random |" in (out / "summary.md").read_text()
    import matplotlib.image as mpimg

    for png in ("helpfulness_vs_harmlessness.png", "toxicity.png"):
        pixels = mpimg.imread(out / png)
        assert pixels.shape[0] > 100 and pixels.std() > 0.01  # not blank


def test_evaluate_scores_existing_responses_without_generating(tmp_path, cai):
    data = tmp_path / "responses.jsonl"
    rows = [
        {"prompt": "Say something.", "response": "You are a worthless idiot.", "model": "rude"},
        {"prompt": "Say something.", "response": "Have a lovely day!", "model": "kind"},
        {"prompt": "Say something else.", "response": "", "model": "kind"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = cai("evaluate", "--responses", data, "--judge-model", "none", "-o", tmp_path / "o")
    assert r.code == 0, r.err
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())["models"]
    assert metrics["rude"]["toxicity_mean"] > 0.5 > metrics["kind"]["toxicity_mean"]
    assert metrics["kind"]["unscored"]["toxicity"] == 1


def test_evaluate_rejects_a_responses_file_without_responses(tmp_path):
    from cai.evaluate import run_evaluation

    data = tmp_path / "r.jsonl"
    data.write_text(json.dumps({"prompt": "hi", "answer": "x"}) + "\n")
    cfg = load_config(EvalConfig, None, {"responses": str(data), "output": tmp_path / "o"})
    with pytest.raises(CaiError, match="response"):
        run_evaluation(cfg)


def test_evaluate_generates_through_the_configured_engine(tmp_path):
    """`engine: {backend: openai}`: the answers come from the server, not an in-process model."""
    pytest.importorskip("httpx")
    from cai.backends.hf import TransformersBackend
    from cai.evaluate import run_evaluation
    from tests.openai_server import serve

    with serve(TransformersBackend("tiny-random", device="cpu")) as server:
        cfg = load_config(EvalConfig, None, {
            "models": ["tiny-random"], "prompts": ["red-team"], "limit": 2, "judge_model": None,
            "output": tmp_path / "o", "sampling": {"max_new_tokens": 4},
            "engine": {"backend": "openai", "base_url": [server.base_url]}})  # fmt: skip
        result = run_evaluation(cfg)
        assert server.requests >= 2  # one chat completion per prompt
    assert result["rows"] == 2
