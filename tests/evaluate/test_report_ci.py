"""The evaluation's means come with seeded bootstrap 95% intervals, in metrics and table."""

from __future__ import annotations

from cai.evaluate.report import all_metrics, summary_markdown


def rows(model: str, tox: list[float], refuse: list[bool]) -> list[dict]:
    return [
        {"model": model, "prompt_id": f"p{i}", "benign": i % 2 == 0, "unscored": {},
         "scores": {"toxic": t, "refusal": float(r), "relevance": 0.5 + t / 10}}
        for i, (t, r) in enumerate(zip(tox, refuse))
    ]  # fmt: skip


def test_means_have_intervals_that_contain_them():
    data = rows("base", [0.1, 0.9, 0.2, 0.8, 0.3, 0.7], [False, True, True, False, True, True])
    data += rows("tuned", [0.0] * 6, [False] * 6)
    m = all_metrics(data, 0.5, {"tuned": {"win_rate": 0.6, "win_rate_ci": [0.4, 0.8]}})
    for key in ("toxicity_mean", "relevance_mean", "refusal_rate_red_team"):
        lo, hi = m["base"][f"{key}_ci"]
        assert lo <= m["base"][key] <= hi and lo < hi, key
    assert m["tuned"]["toxicity_mean_ci"] == [0.0, 0.0]  # no spread, no width
    assert m["base"] == all_metrics(data, 0.5, {})["base"]  # seeded: the same every time
    meta = {"prompt_sets": ["x"], "samples": 1, "threshold": 0.5, "baseline": "base",
            "scorers": ["toxicity"]}  # fmt: skip
    table = summary_markdown(m, meta)
    lo, hi = m["base"]["toxicity_mean_ci"]
    assert f"{m['base']['toxicity_mean']:.3f} [{lo:.3f}, {hi:.3f}]" in table
    assert "0.600 [0.400, 0.800]" in table
