"""After judging: length bias, all-pairs emission and verified revisions, end to end."""

from __future__ import annotations

import json

import pytest

from cai.config import JudgeConfig, load_config
from cai.errors import CaiError
from cai.judge import run_judge
from cai.judge.pairs import expand_all_pairs, length_bias, verify_revisions
from tests.fakes import ScriptedBackend, prefers_text


def _row(cands, comps, scores, **extra):
    comparisons = [{"i": i, "j": j, "p_i": p, "flipped": False} for i, j, p in comps]
    return {"id": "r", "candidates": cands, "comparisons": comparisons, "scores": scores,
            "chosen": [], "rejected": [], **extra}  # fmt: skip


def test_length_bias_counts_wins_of_the_longer_response():
    rows = [
        _row(["short", "much longer"], [(0, 1, 0.2)], [0, 1]),  # longer wins
        _row(["a long answer", "tiny"], [(0, 1, 0.3)], [0, 1]),  # shorter wins
        _row(["same", "sam2"], [(0, 1, 0.9)], [1, 0]),  # equal lengths: not counted
        _row(["x", "xx"], [(0, 1, None)], [0, 0]),  # abstained: not counted
    ]
    assert length_bias(rows) == {"pairs": 2, "longer_wins": 0.5}


def test_all_pairs_gives_one_row_per_judged_pair_with_its_margin():
    row = _row(["a", "b", "c"], [(0, 1, 0.8), (0, 2, 0.3), (1, 2, 0.1)], [0.5, -1.0, 0.9])
    out = expand_all_pairs([row])
    assert [r["id"] for r in out] == ["r-0-1", "r-0-2", "r-1-2"]
    assert {r["pair_of"] for r in out} == {"r"}
    second = out[1]  # c (score 0.9) beats a (0.5); the judge gave P(a beats c) = 0.3
    assert second["chosen"][0]["content"] == "c" and second["rejected"][0]["content"] == "a"
    assert second["margin"] == pytest.approx(0.4) and second["p_chosen"] == pytest.approx(0.7)
    # Each margin is the chosen candidate's score less the rejected one's: |0.5 - -1.0|, ...
    assert [r["margin"] for r in out] == pytest.approx([1.5, 0.4, 1.9])
    assert [r["chosen"][0]["content"] for r in out] == ["a", "c", "c"]


def test_verify_revisions_keeps_preferred_revisions_and_reports_per_principle():
    rows = [
        _row(["rev", "init"], [(0, 1, 0.9)], [1, 0], revision_principles=["kind"]),
        _row(["rev", "init"], [(0, 1, 0.2)], [0, 1], revision_principles=["kind"]),
        _row(["rev", "init"], [(0, 1, 0.6)], [1, 0], revision_principles=["legal", "kind"]),
    ]
    kept, report = verify_revisions(rows, 0.5)
    assert [r["p_revision"] for r in kept] == [0.9, 0.6]
    assert report["kept"] == 2 and report["kept_share"] == pytest.approx(0.6667)
    assert report["per_principle"]["kind"] == {"rows": 3, "kept": 2, "kept_share": 0.6667}
    assert report["per_principle"]["legal"]["kept_share"] == 1.0


def _revisions_file(path):
    rows = [
        ("Talk to your neighbour kindly.", "Poison the dog.", ["empathy"]),  # revision better
        ("Poison the dog.", "Ask them kindly to keep it inside.", ["harm"]),  # revision worse
        ("Write to them kindly.", "Shout at them.", ["harm"]),  # revision better
    ]
    with path.open("w") as f:
        for k, (rev, init, pids) in enumerate(rows):
            f.write(json.dumps({
                "id": f"row{k}", "prompt": [{"role": "user", "content": f"Dog barks {k}"}],
                "chosen": [{"role": "assistant", "content": rev}],
                "rejected": [{"role": "assistant", "content": init}],
                "revision": rev, "principle_ids": pids,
            }) + "\n")  # fmt: skip
    return path


def test_cli_config_verifies_revisions_with_an_oracle_judge(tmp_path):
    src = _revisions_file(tmp_path / "revisions.jsonl")
    cfg = load_config(JudgeConfig, None, {"prompts": str(src), "output": tmp_path / "out",
                                          "verify_revisions": 0.5})  # fmt: skip
    s = run_judge(cfg, judge_backend=ScriptedBackend(prefer=prefers_text("kindly")))
    v = s["verified"]
    assert (v["rows"], v["kept"]) == (3, 2)
    assert v["per_principle"] == {"empathy": {"rows": 1, "kept": 1, "kept_share": 1.0},
                                  "harm": {"rows": 2, "kept": 1, "kept_share": 0.5}}  # fmt: skip
    assert s["rows_written"] == 2 and s["length_bias"]["pairs"] == 3
    assert "Verified revisions" in (tmp_path / "out" / "README.md").read_text()


def test_verify_revisions_needs_a_revisions_output(tmp_path):
    src = tmp_path / "plain.jsonl"
    src.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n')
    cfg = load_config(JudgeConfig, None, {"prompts": str(src), "output": tmp_path / "o",
                                          "verify_revisions": 0.5})  # fmt: skip
    with pytest.raises(CaiError, match="needs a generate-revisions output"):
        run_judge(cfg, judge_backend=ScriptedBackend(prefer=prefers_text("kindly")))


def test_cli_emits_all_pairs_for_k_candidates(cai, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "prefs"
    res = cai("judge", "--prompts", "red-team", "--limit", "2", "--num-candidates", "3",
              "--policy", "tiny-random", "--judge-model", "tiny-random",
              "--emit-pairs", "all", "-o", out)  # fmt: skip
    assert res.code == 0, res.err
    assert "6 preference rows (6 pairs judged)" in res.out and "longer response wins" in res.out
    ds = load_dataset(str(out))["train"]
    assert ds.num_rows == 6 and len(set(ds["id"])) == 6 and len(set(ds["pair_of"])) == 2
    for row in ds:  # chosen is the higher-scored candidate of its pair, margin the gap
        i, j = (int(k) for k in row["id"].rsplit("-", 2)[1:])
        hi, lo = (i, j) if row["scores"][i] >= row["scores"][j] else (j, i)
        assert row["chosen"][0]["content"] == row["candidates"][hi]
        assert row["rejected"][0]["content"] == row["candidates"][lo]
        assert row["margin"] == pytest.approx(row["scores"][hi] - row["scores"][lo])
