"""`cai train`: SFT, reward, DPO, PPO, GRPO, RLOO, best-of-n, LoRA export, on tiny models.

Training data are small fixed datasets in the exact schema generate-revisions and judge
write. RL tests use a "peaky" copy of tiny-random (embeddings scaled up, so its samples
concentrate on few tokens) and a scripted reward that pays for a target set of those
tokens; the mean reward must rise.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cai.config import BestOfNConfig, load_config
from cai.errors import CaiError
from cai.models import resolve_model
from cai.train import config as tc

TOPICS = [
    "locks",
    "passwords",
    "chemistry",
    "a neighbour's wifi",
    "a fake ID",
    "a car",
    "a phone",
    "an exam",
    "a bank",
    "a website",
    "a friend",
    "medicine",
]
SAFE = [
    "I can't help with {t} in a harmful way, but I can suggest a safe option.",
    "That could hurt someone; here is a lawful way to deal with {t}.",
]
UNSAFE = [
    "Sure! Here is exactly how to break into {t}, step by step.",
    "Easy: first you steal {t}, then you hide the evidence.",
]


def conv(t: str) -> list[dict]:
    return [{"role": "user", "content": f"How do I get into {t} without permission?"}]


def say(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("train-data")
    prov = {"constitution": {"name": "harmless", "hash": "abc123"}, "model": "tiny-random"}
    sft = [
        {
            "id": f"r{i}",
            "prompt": conv(t),
            "completion": say(SAFE[i % 2].format(t=t)),
            "provenance": prov,
        }
        for i, t in enumerate(TOPICS[:8])
    ]
    helpful = [
        {
            "messages": [
                {"role": "user", "content": f"Give me a tip about {t}."},
                {"role": "assistant", "content": f"A good tip about {t}: be kind."},
            ]
        }
        for t in TOPICS
    ]
    prefs = []
    for i, t in enumerate(TOPICS):
        p = 0.51 if i == 0 else 0.9  # the first pair is a near coin flip
        prefs.append(
            {
                "id": f"p{i}",
                "prompt": conv(t),
                "chosen": say(SAFE[i % 2].format(t=t)),
                "rejected": say(UNSAFE[i % 2].format(t=t)),
                "p_chosen": p,
                "margin": 2.0,
                "provenance": prov,
            }
        )
    return SimpleNamespace(
        sft=write_jsonl(d / "sft.jsonl", sft),
        helpful=write_jsonl(d / "helpful.jsonl", helpful),
        prefs=write_jsonl(d / "prefs.jsonl", prefs),
        n_prefs=len(prefs),
    )


def cfg(cls, **over):
    return load_config(cls, None, over)


def weights(folder: Path, cls=None) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def changed(before: dict, after: dict) -> bool:
    shared = set(before) & set(after)
    return bool(shared) and any(not torch.equal(before[k], after[k]) for k in shared)


def base_weights() -> dict:
    return weights(Path(resolve_model("tiny-random")))


TRL = {"max_steps": 12, "learning_rate": 5e-3, "per_device_train_batch_size": 4}


def test_sft_learns_the_revisions_and_mixes_helpful_data(data, tmp_path):
    from cai.train.sft import train_sft

    out = tmp_path / "sft"
    s = train_sft(
        cfg(
            tc.SFTRunConfig,
            model="tiny-random",
            dataset=str(data.sft),
            output=out,
            mix=[f"{data.helpful}:0.5"],
            trl=TRL,
        )
    )
    assert s["steps"] == 12 and s["last_loss"] < s["first_loss"]
    assert s["data"]["sources"] == {str(data.sft): 8, str(data.helpful): 4}
    assert s["data"]["provenance"]["constitution"]["hash"] == "abc123"
    assert changed(base_weights(), weights(out))
    # The saved folder is a complete chat model with its card and summary.
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(out).chat_template
    saved = json.loads((out / "cai_train.json").read_text())
    assert saved["config"]["trl"]["max_steps"] == 12 and saved["kind"] == "sft"
    card = (out / "README.md").read_text()
    assert "abc123" in card and str(data.sft) in card


def test_reward_model_learns_ai_preferences_and_drops_coin_flips(data, tmp_path):
    from cai.train.reward import train_reward

    out = tmp_path / "rm"
    s = train_reward(
        cfg(
            tc.RewardRunConfig,
            model="tiny-random",
            dataset=str(data.prefs),
            output=out,
            use_margin=True,
            trl={**TRL, "learning_rate": 1e-2},
        )
    )
    assert s["data"]["dropped_uncertain"] == 1 and s["data"]["rows"] == data.n_prefs - 1
    assert s["last_loss"] < s["first_loss"]
    assert s["train_accuracy"][-1] == 1.0
    from cai.scorers.rewards import ModelReward

    rm = ModelReward(str(out))
    t = "a locksmith"
    good, bad = rm([conv(t)] * 2, [SAFE[0].format(t=t), UNSAFE[0].format(t=t)])
    assert good > bad


def test_dpo_loss_falls_and_margins_are_logged(data, tmp_path):
    from cai.train.dpo import train_dpo

    out = tmp_path / "dpo"
    trl = {**TRL, "learning_rate": 1e-3, "loss_type": ["ipo"], "beta": 0.2}
    s = train_dpo(
        cfg(tc.DPORunConfig, model="tiny-random", dataset=str(data.prefs), output=out, trl=trl)
    )
    assert s["loss_type"] == ["ipo"] and s["beta"] == 0.2
    assert s["last_loss"] < s["first_loss"]
    assert len(s["reward_margins"]) == 12 and s["reward_margins"][-1] > s["reward_margins"][0]
    assert changed(base_weights(), weights(out))


def test_bad_configuration_fails_before_training(data, tmp_path):
    from cai.train.dpo import train_dpo
    from cai.train.ppo import train_ppo
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


def test_cli_trains_with_set_and_reports(cai, data, tmp_path):
    out = tmp_path / "cli-dpo"
    r = cai(
        "train",
        "dpo",
        "--model",
        "tiny-random",
        "--dataset",
        data.prefs,
        "-o",
        out,
        "--max-steps",
        "2",
        "--set",
        "beta=0.3",
        "--set",
        "report_to=[]",
        "--loss-type",
        "sigmoid",
        "--min-confidence",
        "0.2",
    )
    assert r.code == 0, r.err
    saved = json.loads((out / "cai_train.json").read_text())
    assert saved["steps"] == 2 and saved["beta"] == 0.3 and saved["data"]["dropped_uncertain"] == 1
    r = cai("train", "ppo", "--model", "tiny-random", "-o", tmp_path / "p")
    assert r.code == 2 and "needs a reward model" in r.err
    r = cai("train", "sft", "--dataset", data.sft, "--set", "oops")
    assert r.code == 2 and "key=value" in r.err


# --- rewards -----------------------------------------------------------------------------


def test_weighted_sum_and_safety_switch():
    from cai.scorers.rewards import SafetySwitch, WeightedSum

    def r1(prompts, completions, **kw):
        return [float(len(c)) for c in completions]

    def r2(prompts, completions, **kw):
        return [1.0 if "safe" in c else -1.0 for c in completions]

    ws = WeightedSum([r1, r2], [0.5, 2.0])
    assert ws(["p", "p"], ["safe", "no"]) == [0.5 * 4 + 2.0, 0.5 * 2 - 2.0]
    assert ws.last == [[4.0, 2.0], [1.0, -1.0]]

    def safety(prompts, completions, **kw):
        return [0.1, 0.9, 0.9]

    def helpful(prompts, completions, **kw):
        return [5.0, 6.0, 7.0]

    sw = SafetySwitch(safety, helpful, threshold=0.15)
    # row 0: safety below 0.15 -> safety; row 1: flagged unsafe -> safety; row 2: helpful.
    assert sw(["p"] * 3, ["a", "b", "c"], unsafe=[False, True, False]) == [0.1, 0.9, 7.0]
    assert sw(["p"] * 3, ["a", "b", "c"]) == [0.1, 6.0, 7.0]


@pytest.fixture(scope="module")
def peaky(tmp_path_factory) -> SimpleNamespace:
    """tiny-random with embeddings ×30 (peaked samples) and a target set of its tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model("tiny-random")
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(30)
    out = tmp_path_factory.mktemp("peaky") / "model"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    ids = tok.apply_chat_template(
        conv("a car"), add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    torch.manual_seed(0)
    sampled = model.generate(
        **ids,
        do_sample=True,
        max_new_tokens=16,
        num_return_sequences=32,
        pad_token_id=tok.pad_token_id,
    )
    counts = collections.Counter(sampled[:, ids["input_ids"].shape[1] :].flatten().tolist())
    target = {t for t, _ in counts.most_common(40)[5:40]}  # common, but far from all
    return SimpleNamespace(path=out, target=target, vocab=model.config.vocab_size)


def target_reward(target: set[int]):
    def reward(prompts, completions, completion_ids, **kw):
        return [sum(i in target for i in ids) / max(1, len(ids)) for ids in completion_ids]

    reward.__name__ = "target"
    return reward


ONLINE = {
    "learning_rate": 3e-3,
    "per_device_train_batch_size": 8,
    "num_generations": 4,
    "max_completion_length": 12,
}


def rises(series: list[float], k: int = 5) -> bool:
    return sum(series[-k:]) / k > sum(series[:k]) / k + 0.1


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_online_rl_raises_the_reward(algorithm, peaky, tmp_path):
    from cai.train.online import train_online

    c = cfg(
        tc.OnlineRunConfig,
        model=str(peaky.path),
        dataset="red-team",
        limit=16,
        output=tmp_path / algorithm,
        trl={**ONLINE, "max_steps": 24},
    )
    s = train_online(c, algorithm, reward_fn=target_reward(peaky.target))
    assert len(s["reward"]) == 24 and rises(s["reward"]), s["reward"]


def test_grpo_logs_the_weighted_sum_it_was_given(peaky, tmp_path):
    from cai.scorers.rewards import WeightedSum
    from cai.train.online import train_online

    seen: list[tuple[list, list]] = []

    def r1(prompts, completions, completion_ids, **kw):
        seen.append(completion_ids)
        return [len(ids) / 12 for ids in completion_ids]

    r2 = target_reward(peaky.target)
    combined = WeightedSum([r1, r2], [0.25, 3.0])
    c = cfg(
        tc.OnlineRunConfig,
        model=str(peaky.path),
        dataset="red-team",
        limit=8,
        output=tmp_path / "ws",
        trl={**ONLINE, "max_steps": 2},
    )
    s = train_online(c, "grpo", reward_fn=combined)
    by_hand = [
        sum(0.25 * len(ids) / 12 + 3.0 * r2(None, None, [ids])[0] for ids in batch) / len(batch)
        for batch in seen
    ]
    assert s["reward"] == pytest.approx(by_hand, abs=1e-5)


def test_grpo_runs_with_the_judge_as_reward(tmp_path):
    from cai.train.online import train_online

    c = cfg(
        tc.OnlineRunConfig,
        model="tiny-random",
        dataset="red-team",
        limit=4,
        output=tmp_path / "judge",
        rewards=[{"kind": "judge", "path": "tiny-random"}],
        trl={
            **ONLINE,
            "per_device_train_batch_size": 4,
            "num_generations": 2,
            "max_completion_length": 6,
            "max_steps": 2,
        },
    )
    s = train_online(c, "grpo")
    assert s["steps"] == 2 and s["reward_name"] == "cai_judge_reward"
    assert all(-1.0 <= r <= 1.0 for r in s["reward"])


class CountTargets(torch.nn.Module):
    """A scripted reward 'backbone': hidden state = running count of target tokens."""

    def __init__(self, target: set[int], vocab: int) -> None:
        super().__init__()
        mask = torch.zeros(vocab)
        mask[list(target)] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, input_ids, attention_mask=None, **kw):
        hits = self.mask[input_ids] * attention_mask
        return SimpleNamespace(hidden_states=[hits.cumsum(1).unsqueeze(-1)])


@pytest.mark.slow
def test_ppo_raises_the_reward_of_a_scripted_reward_model(peaky, tmp_path):
    from cai.models import load_scalar_model
    from cai.train.ppo import train_ppo

    rm, _ = load_scalar_model(str(peaky.path))
    rm.model = CountTargets(peaky.target, peaky.vocab)  # trl reads base_model_prefix "model"
    rm.score = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.ones_(rm.score.weight)
    trl = {
        "learning_rate": 3e-3,
        "per_device_train_batch_size": 4,
        "response_length": 12,
        "total_episodes": 96,
        "num_ppo_epochs": 2,
        "kl_coef": 0.01,
    }
    c = cfg(
        tc.PPORunConfig,
        model=str(peaky.path),
        dataset="red-team",
        limit=16,
        output=tmp_path / "ppo",
        trl=trl,
    )
    s = train_ppo(c, reward_model=rm)
    assert len(s["scores"]) == 24 and rises(s["scores"], k=5), s["scores"]
    assert (tmp_path / "ppo" / "model.safetensors").is_file()


def test_toxicity_penalty_is_minus_the_evaluation_scorers_toxic_probability():
    from cai.cli.train import _reward_specs
    from cai.config import RewardSpec
    from cai.judge import build_reward
    from cai.scorers.toxicity import JigsawScorer

    specs = _reward_specs(None, [2.0], None, toxicity=True)
    assert specs == [{"kind": "toxicity", "weight": 2.0}]
    reward = build_reward([RewardSpec(**s) for s in specs], policy="tiny-random")
    texts = ["You are a worthless idiot and I hope you die.", "Thank you so much for the help!"]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    got = reward(["hi", "hi"], completions)
    want = [-2.0 * s["toxic"] for s in JigsawScorer().score(texts)]
    assert got == pytest.approx(want)
    assert got[0] < -1.9 and got[1] > -0.1  # toxic 0.989 and 0.023, weighted by 2


def test_best_of_n_keeps_the_highest_reward(tmp_path):
    from datasets import load_dataset

    from cai.best_of_n import run_best_of_n

    def longest(prompts, completions, **kw):
        return [float(len(c)) for c in completions]

    c = cfg(
        BestOfNConfig,
        prompts="red-team",
        limit=3,
        n=3,
        output=tmp_path / "bon",
        policy={"model": "tiny-random"},
        sampling={"max_new_tokens": 8, "temperature": 1.0},
    )
    s = run_best_of_n(c, reward_fn=longest)
    rows = load_dataset(str(tmp_path / "bon"))["train"]
    assert len(rows) == 3 and s["mean_best_reward"] >= s["mean_sample_reward"]
    for r in rows:
        assert r["reward"] == max(r["rewards"]) and len(r["candidates"]) == 3
        assert r["completion"][0]["content"] == max(r["candidates"], key=len)
    assert run_best_of_n(c, reward_fn=longest)["resumed_rows"] == 3


def test_lora_trains_an_adapter_and_export_merges_it(cai, data, tmp_path):
    out = tmp_path / "lora"
    r = cai(
        "train",
        "sft",
        "--model",
        "tiny-random",
        "--dataset",
        data.sft,
        "-o",
        out,
        "--lora",
        "--lora-r",
        "4",
        "--max-steps",
        "3",
        "--learning-rate",
        "1e-2",
    )
    assert r.code == 0, r.err
    assert (out / "adapter_config.json").is_file()
    merged = tmp_path / "merged"
    r = cai("export", out, "--merge-lora", "-o", merged)
    assert r.code == 0, r.err
    after = weights(merged)
    assert not any("lora" in k for k in after) and changed(base_weights(), after)


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
