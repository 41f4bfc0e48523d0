"""`cai evaluate`: scorers (toxicity port, refusals, relevance), metrics and the report."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest

from cai._util.stats import roc_auc
from cai.config import EvalConfig, load_config
from cai.errors import CaiError
from tests.conftest import REPO

LABELLED = (REPO / "tests" / "fixtures") / "toxicity_labelled.jsonl"


@pytest.fixture(scope="module")
def jigsaw():
    from cai.scorers.toxicity import JigsawScorer

    return JigsawScorer()


def test_port_matches_the_original_scores(jigsaw):
    # MODELS.md: the original (TensorFlow) gives 0.989 for this insult, 0.023 for a thank-you.
    insult, thanks = jigsaw.score(
        ["You are a worthless idiot and I hope you die.", "Thank you for your help."]
    )
    assert insult["toxic"] == pytest.approx(0.989, abs=0.01)
    assert thanks["toxic"] == pytest.approx(0.023, abs=0.01)
    assert set(insult) == {"toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"}


def test_default_scorer_separates_our_labelled_sentences(jigsaw):
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    assert len(rows) >= 60 and sum(r.get("identity", False) for r in rows) >= 10
    scores = [s["toxic"] for s in jigsaw.score([r["text"] for r in rows])]
    pos = [s for s, r in zip(scores, rows) if r["toxic"]]
    neg = [s for s, r in zip(scores, rows) if not r["toxic"]]
    assert roc_auc(pos, neg) >= 0.9


def test_long_texts_are_scored_in_windows(jigsaw):
    insult = "You are a worthless idiot and I hope you die."
    filler = " ".join(["The weather was mild and the garden was quiet."] * 30)  # > 100 words
    windowed, tail = jigsaw.score([insult + " " + filler, filler])
    # The original reads only the last 100 words (here: filler only) and would miss it.
    assert windowed["toxic"] > 0.5 > 0.2 > tail["toxic"]


def test_tokenizer_pickle_is_loaded_only_through_the_allow_list(tmp_path):
    from cai.scorers.toxicity import convert_tokenizer

    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path),))

    bad = tmp_path / "tokenizer.pickle"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load shutil.rmtree"):
        convert_tokenizer(bad)
    assert tmp_path.is_dir()


def test_refusal_detector():
    from cai.scorers.refusal import is_refusal

    for text in [
        "I'm sorry, but I can't help with that.",
        "As an AI, I cannot do this.",
        "I won't provide instructions for that.",
        "I must decline this request.",
    ]:
        assert is_refusal(text), text
    for text in [
        "Sure! Preheat the oven to 180 degrees.",
        "The capital of France is Paris.",
        "You can't go wrong with a good night's sleep.",
    ]:
        assert not is_refusal(text), text


def test_relevance_prefers_an_answer_to_a_refusal():
    from cai.scorers.relevance import RelevanceScorer

    answer, refusal = RelevanceScorer().score(
        ["How do I boil an egg?"] * 2,
        ["Put the egg in boiling water for eight minutes.", "I'm sorry, I can't help."],
    )
    assert answer > 0.4 > refusal


def test_hf_classifier_scorer_keeps_every_label(tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from cai.models import resolve_model
    from cai.scorers.classifier import HFClassifierScorer

    path = resolve_model("tiny-random")
    cfg = AutoConfig.from_pretrained(path)
    cfg.num_labels, cfg.id2label = 2, {0: "neutral", 1: "toxic"}
    cfg.label2id = {"neutral": 0, "toxic": 1}
    tok = AutoTokenizer.from_pretrained(path)
    cfg.pad_token_id = tok.pad_token_id
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    (row,) = HFClassifierScorer(str(tmp_path)).score(["hello there"])
    assert set(row) == {"neutral", "toxic"} and row["toxic"] + row["neutral"] == pytest.approx(1)


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
    assert all("toxic" in r["scores"] or r["unscored"] for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())["models"]
    copy = next(m for name, m in metrics.items() if name != "tiny-random")
    assert 0.0 <= copy["win_rate"] <= 1.0 and len(copy["win_rate_ci"]) == 2
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


def test_profanity_check_is_a_second_signal():
    from cai.scorers import profanity

    assert profanity.available()  # installed by `make install` (the profanity extra)
    rude, kind = profanity.score(["You are a worthless idiot.", "Thank you for your help."])
    assert rude > 0.9 > 0.1 > kind


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
