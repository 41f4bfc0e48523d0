"""`cai.train.common` and `cai.train.config`: checks before training, trl imports, launch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cai.errors import CaiError
from cai.models import resolve_model
from cai.train import config as tc
from tests.train.conftest import cfg


def test_bad_configuration_fails_before_training(data, tmp_path):
    from cai.train.ppo import train_ppo
    from cai.train.preference import train_dpo
    from cai.train.reward import train_reward
    from cai.train.sft import train_sft

    with pytest.raises(CaiError, match="missing column.*rejected"):
        train_reward(
            cfg(
                tc.RewardRunConfig,
                model="tiny-random",
                dataset=str(data.sft),
                output=tmp_path / "x",
            )
        )
    with pytest.raises(CaiError, match="prompt and completion"):
        train_sft(
            cfg(
                tc.SFTRunConfig, model="tiny-random", dataset=str(data.prefs), output=tmp_path / "x"
            )
        )
    with pytest.raises(CaiError, match="needs a reward model"):
        train_ppo(cfg(tc.PPORunConfig, model="tiny-random", output=tmp_path / "x"))
    with pytest.raises(CaiError, match="trl field error"):
        train_dpo(
            cfg(
                tc.DPORunConfig,
                model="tiny-random",
                dataset=str(data.prefs),
                output=tmp_path / "x",
                trl={"no_such_field": 1},
            )
        )
    # A model without a chat template.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bare = tmp_path / "bare"
    AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random")).save_pretrained(bare)
    tok = AutoTokenizer.from_pretrained(resolve_model("tiny-random"))
    tok.chat_template = None
    tok.save_pretrained(bare)
    with pytest.raises(CaiError, match="no chat template"):
        train_dpo(
            cfg(tc.DPORunConfig, model=str(bare), dataset=str(data.prefs), output=tmp_path / "x")
        )
    assert not (tmp_path / "x").exists()
    with pytest.raises(CaiError, match="safety-switch needs exactly two"):
        cfg(tc.OnlineRunConfig, combine="safety-switch", rewards=[{"kind": "model", "path": "x"}])


def test_a_vllm_that_trl_cannot_import_gives_an_error_that_says_what_to_do(monkeypatch):
    import trl

    from cai.train.common import trl_attr

    real = type(trl).__getattr__

    def broken(self, name):
        if name != "NoSuchTrainerHere":
            return real(self, name)
        raise RuntimeError(
            f"Failed to import trl.trainer.{name}:\ncannot import name 'X' from "
            "'vllm.distributed.weight_transfer.nccl_engine'"
        )

    monkeypatch.setattr(type(trl), "__getattr__", broken)
    with pytest.raises(CaiError, match=r"\.venv-vllm.*vllm release"):
        trl_attr("NoSuchTrainerHere")


@pytest.mark.slow
def test_sft_and_dpo_run_under_accelerate_launch_on_two_processes(data, tmp_path):
    cai_script = Path(sys.executable).with_name("cai")
    for kind, dataset in (("sft", data.sft), ("dpo", data.prefs)):
        out = tmp_path / kind
        cmd = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--cpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            str(cai_script),
            "train",
            kind,
            "--model",
            "tiny-random",
            "--dataset",
            str(dataset),
            "-o",
            str(out),
            "--max-steps",
            "2",
            "--batch-size",
            "2",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert (out / "model.safetensors").is_file()
        summary = json.loads((out / "cai_train.json").read_text())
        assert summary["steps"] == 2
