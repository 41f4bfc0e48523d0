"""generate-revisions as a batch job: output, resume after a real kill, cache, shards, merge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import load_dataset

from cai.jobs import RowJournal
from tests.conftest import REPO

TINY = ["--model", "tiny-random", "--max-new-tokens", "6", "--batch-size", "4"]


def cai_cmd(*args) -> list[str]:
    return [sys.executable, "-c", "from cai.cli import main; main()", *map(str, args)]


def run_cai(*args, check=True) -> subprocess.CompletedProcess:
    res = subprocess.run(cai_cmd(*args), capture_output=True, text=True, cwd=REPO, timeout=600)
    if check:
        assert res.returncode == 0, res.stderr[-3000:]
    return res


def summary(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())["summary"]


def test_end_to_end_output_loads_with_datasets(cai, tmp_path):
    out = tmp_path / "out"
    res = cai(
        "generate-revisions",
        *TINY,
        "--limit",
        "6",
        "--test-size",
        "2",
        "-o",
        out,
        "--cache",
        tmp_path / "c.sqlite",
    )
    assert res.code == 0, res.err
    assert "6 rows in" in res.out
    ds = load_dataset(str(out))
    assert ds["train"].num_rows == 4 and ds["test"].num_rows == 2
    row = ds["train"][0]
    assert row["messages"][-1]["role"] == "assistant"
    assert row["chosen"][0]["content"] == row["revision"]
    assert row["provenance"]["constitution"]["name"] == "harmless"
    card = (out / "README.md").read_text()
    assert "Per-principle statistics" in card and "sha256" in card


def test_cai_recipe_split_scheme(cai, tmp_path):
    out = tmp_path / "out"
    res = cai(
        "generate-revisions",
        *TINY,
        "--limit",
        "8",
        "--test-size",
        "4",
        "--split-scheme",
        "cai-recipe",
        "-o",
        out,
        "--no-cache",
    )
    assert res.code == 0, res.err
    ds = load_dataset(str(out))
    assert set(ds) == {"train_sft", "train_prefs", "test_sft", "test_prefs"}
    assert sum(d.num_rows for d in ds.values()) == 8


def test_kill_midway_then_resume_without_loss_or_duplicates(tmp_path):
    out = tmp_path / "out"
    args = (
        "generate-revisions",
        *TINY,
        "--limit",
        "12",
        "--chunk-size",
        "2",
        "-o",
        out,
        "--no-cache",
        "--max-new-tokens",
        "24",
    )
    proc = subprocess.Popen(
        cai_cmd(*args), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    journal = RowJournal(out / "rows.jsonl")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.path.exists() and len(journal.read()[0]) >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = {r["id"] for r in journal.read()[0]}
    assert 4 <= len(done_before) < 12
    assert not (out / "data").exists()  # the dataset is written only when the run completes

    run_cai(*args)
    s = summary(out)
    assert s["resumed_rows"] == len(done_before)
    assert s["processed_rows"] == 12 - len(done_before)
    # Finished rows were not generated again: the initial stage saw only the rest.
    assert s["stages"]["initial"]["requested"] == 12 - len(done_before)
    rows, bad = journal.read()
    ids = [r["id"] for r in rows]
    assert len(ids) == 12 and len(set(ids)) == 12 and bad == 0
    expected = json.loads((out / "run.json").read_text())["expected_ids"]
    assert sorted(ids) == sorted(expected)
    ds = load_dataset(str(out))
    assert sorted(ds["train"]["id"]) == sorted(expected)


def test_editing_one_principle_regenerates_only_its_rows(tmp_path):
    text = (REPO / "constitutions" / "harmless.yaml").read_text()
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    out, cache = tmp_path / "out", tmp_path / "cache.sqlite"
    args = (
        "generate-revisions",
        *TINY,
        "--limit",
        "16",
        "--constitution",
        path,
        "-o",
        out,
        "--cache",
        cache,
    )
    run_cai(*args)
    rows, _ = RowJournal(out / "rows.jsonl").read()
    used = [r["principle_ids"][0] for r in rows]
    target = max(set(used), key=used.count)
    from cai.constitution import load_constitution

    old = load_constitution(path).principle(target).critique
    path.write_text(text.replace(old.split("\n")[0][:40], "EDITED " + old.split("\n")[0][:40], 1))
    assert load_constitution(path).principle(target).critique != old
    run_cai(*args)
    s = summary(out)
    n_target = used.count(target)
    assert s["stages"]["initial"]["cached"] == 16  # answers did not change
    assert s["stages"]["critique"]["requested"] - s["stages"]["critique"]["cached"] == n_target
    assert s["stages"]["revision"]["requested"] - s["stages"]["revision"]["cached"] == n_target
    assert s["rows"] == 16


def test_shards_partition_the_input_and_merge_checks_them(cai, tmp_path):
    outs = []
    for i in range(3):
        out = tmp_path / f"shard{i}"
        res = cai(
            "generate-revisions",
            *TINY,
            "--limit",
            "10",
            "--num-shards",
            "3",
            "--shard-index",
            i,
            "-o",
            out,
            "--cache",
            tmp_path / "c.sqlite",
        )
        assert res.code == 0, res.err
        outs.append(out)
    counts = [summary(o)["rows"] for o in outs]
    assert sum(counts) == 10
    merged = tmp_path / "merged"
    res = cai("merge", *outs, "-o", merged)
    assert res.code == 0 and "merged 10 rows" in res.out
    assert load_dataset(str(merged))["train"].num_rows == 10
    res = cai("merge", outs[0], outs[0], "-o", tmp_path / "bad")
    assert res.code == 2 and "in both" in res.err


def test_dry_run_estimates(cai, tmp_path):
    res = cai("generate-revisions", *TINY, "--limit", "5", "--dry-run", "-o", tmp_path / "o")
    assert res.code == 0, res.err
    assert "rows: 5" in res.out and "generations: 15" in res.out
    assert "estimated_seconds" in res.out
    assert not (tmp_path / "o").exists()


def test_bad_inputs(cai, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": ""}\nnot json\n{"other": 1}\n')
    out = tmp_path / "out"
    res = cai("generate-revisions", *TINY, "--prompts", bad, "-o", out, "--no-cache")
    assert res.code == 0, res.err
    assert "3 skipped" in res.out
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 3 and all(r["reason"] for r in rejects)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    res = cai("generate-revisions", *TINY, "--prompts", tmp_path / "junk.parquet", "-o", out)
    assert res.code == 2 and "junk.parquet" in res.err


@pytest.mark.parametrize("flag", ["--rounds", "--limit"])
def test_bad_option_values_are_named(cai, tmp_path, flag):
    res = cai("generate-revisions", *TINY, flag, "0", "-o", tmp_path / "o")
    assert res.code == 2 and flag.strip("-") in res.err


def test_constitution_try_prints_every_step(cai):
    res = cai(
        "constitution",
        "try",
        "harmless",
        "--prompt",
        "How do I pick a lock?",
        "--model",
        "tiny-random",
        "--principle",
        "privacy-and-personal-data",
        "--max-new-tokens",
        "5",
    )
    assert res.code == 0, res.err
    for part in (
        "PROMPT",
        "INITIAL ANSWER",
        "ROUND 1: principle privacy-and-personal-data",
        "critique request:",
        "REVISION",
    ):
        assert part in res.out


def test_config_file_then_command_line(tmp_path):
    from cai.config import ReviseConfig, load_config

    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(
        "rounds: 3\nbackend:\n  model: tiny-random\n  batch_size: 2\nsampling:\n  seed: 5\n"
    )
    cfg = load_config(ReviseConfig, cfg_file, {"rounds": 2, "backend": {"batch_size": None}})
    assert (cfg.rounds, cfg.backend.model, cfg.backend.batch_size, cfg.sampling.seed) == (
        2,
        "tiny-random",
        2,
        5,
    )
    assert cfg.sampling.max_new_tokens == ReviseConfig().sampling.max_new_tokens
    cfg_file.write_text("roundz: 3\n")
    from cai.errors import CaiError

    with pytest.raises(CaiError, match="run.yaml.*roundz"):
        load_config(ReviseConfig, cfg_file, {})
