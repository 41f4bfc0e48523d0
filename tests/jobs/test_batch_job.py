"""The one batch-job skeleton (``cai.jobs.BatchJob``) and the jobs that run on it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from cai.data import read_prompts
from cai.errors import CaiError
from cai.jobs import SCHEMA_VERSION, BatchJob, provenance
from tests.fakes import ScriptedBackend


def _prompts(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    return path


def _data(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [
        r
        for f in sorted((folder / "data").rglob("*.parquet"))
        for r in pq.read_table(f).to_pylist()
    ]


def _cfg(tmp_path: Path, **kw) -> SimpleNamespace:
    base = {"prompts": str(_prompts(tmp_path / "in.jsonl", ["a", "bb", "ccc"])),
            "output": tmp_path / "out", "chunk_size": 2, "test_size": 0,
            "sampling": SimpleNamespace(seed=0), "push_to_hub": None}  # fmt: skip
    return SimpleNamespace(**{**base, **kw})


class Upper(BatchJob):
    """A toy job: each row's prompt in capitals."""

    desc = "upper"

    def __init__(self, cfg, *, drop: str | None = None, fail_prepare: bool = False) -> None:
        super().__init__(cfg)
        self.drop, self.fail_prepare = drop, fail_prepare
        self.calls: list[str] = []

    def read(self):
        self.calls.append("read")
        return read_prompts(self.cfg.prompts)

    def screen(self, rows):
        self.calls.append("screen")
        keep = [r for r in rows if r.conversation[-1]["content"] != self.drop]
        from cai.data import Reject

        return keep, [Reject(r.index, r.id, "dropped", "") for r in rows if r not in keep]

    def prepare(self, rows):
        self.calls.append("prepare")
        if self.fail_prepare:
            raise CaiError("the model did not load")
        return rows, []

    def provenance(self):
        return provenance(job="upper")

    def settings(self):
        return {"job": "upper", "output": str(self.output)}

    def process(self, chunk):
        self.calls.append(f"process {len(chunk)}")
        return [{"id": r.id, "text": r.conversation[-1]["content"].upper(),
                 "provenance": self.provenance()} for r in chunk]  # fmt: skip

    def card(self, summary):
        from cai.data import DatasetCard

        return DatasetCard(title="upper", summary=f"{summary['rows']} rows", sections={}, tags=[])

    def close(self):
        self.calls.append("close")


def test_the_skeleton_runs_every_step_in_order_and_resumes(tmp_path):
    job = Upper(_cfg(tmp_path))
    summary = job.run()
    assert job.calls == ["read", "screen", "prepare", "process 2", "process 1", "close"]
    assert summary["rows"] == 3 and summary["processed_rows"] == 3
    out = tmp_path / "out"
    state = json.loads((out / "run.json").read_text())
    assert state["complete"] and state["summary"]["rows"] == 3
    data = _data(out)
    assert sorted(r["text"] for r in data) == ["A", "BB", "CCC"]
    assert all(r["provenance"]["schema_version"] == SCHEMA_VERSION for r in data)
    assert (out / "README.md").is_file()

    again = Upper(_cfg(tmp_path))
    assert again.run()["resumed_rows"] == 3
    assert not any(c.startswith("process") for c in again.calls)


def test_rows_screened_out_become_rejects_and_no_rows_left_fails(tmp_path):
    job = Upper(_cfg(tmp_path), drop="bb")
    assert job.run()["rejected_rows"] == 1
    rejects = (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()
    assert [json.loads(x)["reason"] for x in rejects] == ["dropped"]

    cfg = _cfg(tmp_path, prompts=str(_prompts(tmp_path / "one.jsonl", ["zz"])),
               output=tmp_path / "none")  # fmt: skip
    job = Upper(cfg, drop="zz")
    with pytest.raises(CaiError, match="all 1 rows were rejected"):
        job.run()
    assert "prepare" not in job.calls and job.calls[-1] == "close"  # no model loaded
    assert (tmp_path / "none" / "rejects.jsonl").is_file()


def test_the_input_is_checked_before_anything_is_read(tmp_path):
    cfg = _cfg(tmp_path)
    cfg.output = tmp_path / "in.jsonl" / "out"  # under a file
    job = Upper(cfg)
    with pytest.raises(CaiError, match="is a file"):
        job.run()
    assert job.calls == []

    folder = tmp_path / "unfinished"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"complete": False}))
    job = Upper(_cfg(tmp_path, prompts=str(folder), output=tmp_path / "o2"))
    with pytest.raises(CaiError, match="unfinished run"):
        job.run()
    assert job.calls == []


def test_close_runs_when_a_step_fails_and_the_folder_is_unlocked(tmp_path):
    job = Upper(_cfg(tmp_path), fail_prepare=True)
    with pytest.raises(CaiError, match="did not load"):
        job.run()
    assert job.calls[-1] == "close"
    assert Upper(_cfg(tmp_path)).run()["rows"] == 3  # the lock was released


def test_a_job_that_writes_no_dataset_keeps_only_its_journal(tmp_path):
    class Journal(Upper):
        writes_dataset = False

    job = Journal(_cfg(tmp_path))
    summary = job.run()
    out = tmp_path / "out"
    assert summary["rows"] == 3 and len(job.result.rows) == 3
    assert (out / "rows.jsonl").is_file() and not (out / "data").exists()


def test_best_of_n_and_evaluate_answers_carry_the_schema_version(tmp_path):
    from cai.best_of_n import run_best_of_n
    from cai.config import BestOfNConfig, EvalConfig
    from cai.evaluate.run import generate_responses, load_prompt_sets

    prompts = _prompts(tmp_path / "p.jsonl", ["hello", "hi there"])
    cfg = BestOfNConfig(prompts=str(prompts), n=2, output=tmp_path / "bon")
    run_best_of_n(cfg, reward_fn=lambda p, c, **kw: [float(len(x)) for x in c],
                  backend=ScriptedBackend(answer="fine"))  # fmt: skip
    rows = _data(tmp_path / "bon")
    assert [r["provenance"]["schema_version"] for r in rows] == [SCHEMA_VERSION] * 2

    ecfg = EvalConfig(models=["scripted-model"], prompts=[str(prompts)], output=tmp_path / "ev")
    generate_responses(ecfg, "scripted-model", load_prompt_sets(ecfg), ScriptedBackend(answer="ok"))
    journal = (tmp_path / "ev" / "responses" / "scripted-model" / "rows.jsonl").read_text()
    answers = [json.loads(x)["row"] for x in journal.splitlines()]
    assert [a["provenance"]["schema_version"] for a in answers] == [SCHEMA_VERSION] * 2
    assert answers[0]["provenance"]["model"] == "scripted-model"
