"""The whole method, end to end on SmolLM2: revisions → SFT → judge → reward → DPO → GRPO.

1. ``generate-revisions`` on N red-team prompts (one round);
2. SFT of SmolLM2 on the revisions (loss on the revision only);
3. K=2 candidates per prompt sampled from the SFT model, judged by SmolLM2 in logprob mode
   (both orders) into preferences, with a held-out quarter;
4. a reward model on those AI preferences; its accuracy on the held-out ones is reported;
5. DPO of the SFT model on the preferences; the reward margins over steps are reported;
6. GRPO of the DPO model with the reward model as the reward.

Each stage's wall time goes to the log and to ``benchmarks/results/e2e.json``.

    .venv/bin/python benchmarks/e2e.py                       # SmolLM2, 64 prompts (~30 min)
    .venv/bin/python benchmarks/e2e.py --model tiny-random --prompts 8 --steps 4   # quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _common import machine_info, write_json

from cai.config import JudgeConfig, ReviseConfig, load_config
from cai.judge_run import run_judge
from cai.revise_run import run_revisions
from cai.train import config as tc
from cai.train.dpo import train_dpo
from cai.train.online import train_online
from cai.train.reward import train_reward
from cai.train.sft import train_sft


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--steps", type=int, default=32, help="steps of SFT, reward and DPO")
    ap.add_argument("--rl-steps", type=int, default=8, help="GRPO steps")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--work", type=Path, default=Path("out/e2e"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/e2e.json"))
    a = ap.parse_args()
    w = a.work
    times: dict[str, float] = {}
    results: dict = {
        "machine": machine_info(a.model),
        "args": {k: str(v) for k, v in vars(a).items()},
    }

    def stage(name: str, fn):
        print(f"=== {name}", flush=True)
        start = time.perf_counter()
        out = fn()
        times[name] = round(time.perf_counter() - start, 1)
        print(f"=== {name}: {times[name]} s", flush=True)
        results["seconds"] = times
        write_json(a.out, results)
        return out

    sampling = {"max_new_tokens": a.max_new_tokens}
    rev = stage("revisions", lambda: run_revisions(load_config(ReviseConfig, None, {
        "prompts": "red-team", "limit": a.prompts, "output": w / "revisions", "no_cache": True,
        "backend": {"model": a.model, "batch_size": 32}, "sampling": sampling,
    })))  # fmt: skip
    results["revisions"] = {k: rev.get(k) for k in ("rows", "tokens_per_second", "seconds")}
    trl = {"max_steps": a.steps, "per_device_train_batch_size": 8}
    sft = stage("sft", lambda: train_sft(load_config(tc.SFTRunConfig, None, {
        "model": a.model, "dataset": str(w / "revisions"), "output": w / "sft",
        "trl": {**trl, "learning_rate": 2e-5, "max_length": 512},
    })))  # fmt: skip
    results["sft"] = {"first_loss": sft["first_loss"], "last_loss": sft["last_loss"]}
    judged = stage("judge", lambda: run_judge(load_config(JudgeConfig, None, {
        "prompts": "red-team", "limit": a.prompts, "output": w / "preferences",
        "num_candidates": 2, "policy": {"model": str(w / "sft"), "batch_size": 32},
        "judge": {"model": a.model, "batch_size": 16}, "sampling": sampling, "test_size": 0.25,
    })))  # fmt: skip
    results["judge"] = {k: judged.get(k) for k in ("pairs", "position_consistency", "a_win_rate")}
    rm = stage("reward", lambda: train_reward(load_config(tc.RewardRunConfig, None, {
        "model": str(w / "sft"), "dataset": str(w / "preferences"), "output": w / "reward",
        "eval_split": "test", "min_confidence": 0.0,
        "trl": {**trl, "learning_rate": 3e-5, "max_length": 512},
    })))  # fmt: skip
    results["reward"] = {
        "held_out_accuracy": rm.get("eval_accuracy"),
        "held_out_pairs": rm.get("eval_rows"),
        "train_accuracy_last": rm["train_accuracy"][-1:],
    }
    dpo = stage("dpo", lambda: train_dpo(load_config(tc.DPORunConfig, None, {
        "model": str(w / "sft"), "dataset": str(w / "preferences"), "output": w / "dpo",
        "trl": {**trl, "learning_rate": 5e-6, "max_length": 512, "beta": 0.1},
    })))  # fmt: skip
    results["dpo"] = {"reward_margins": dpo["reward_margins"], "last_loss": dpo["last_loss"]}
    grpo = stage("grpo", lambda: train_online(load_config(tc.OnlineRunConfig, None, {
        "model": str(w / "dpo"), "dataset": "red-team", "limit": a.prompts,
        "output": w / "grpo", "rewards": [{"kind": "model", "path": str(w / "reward")}],
        "trl": {"max_steps": a.rl_steps, "per_device_train_batch_size": 8,
                "num_generations": 4, "max_completion_length": 64, "learning_rate": 1e-6},
    }), "grpo"))  # fmt: skip
    results["grpo"] = {"reward": grpo["reward"]}
    results["total_seconds"] = round(sum(times.values()), 1)
    write_json(a.out, results)
    print("\n| stage | seconds |\n|---|---:|")
    for k, v in times.items():
        print(f"| {k} | {v} |")
    print(f"| total | {results['total_seconds']} |")
    print(f"\nreward model held-out accuracy: {results['reward']['held_out_accuracy']} "
          f"on {results['reward']['held_out_pairs']} pairs")  # fmt: skip
    print(f"DPO reward margins by step: {[round(m, 3) for m in dpo['reward_margins']]}")
    print(f"GRPO reward by step: {[round(r, 3) for r in grpo['reward']]}")


if __name__ == "__main__":
    sys.exit(main())
