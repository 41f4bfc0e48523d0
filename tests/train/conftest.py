"""Shared fixtures of the train tests: small datasets and a "peaky" tiny model.

Training data are small fixed datasets in the exact schema generate-revisions and judge
write. RL tests use a "peaky" copy of tiny-random (embeddings scaled up, so its samples
concentrate on few tokens) and a scripted reward that pays for a target set of those
tokens; the mean reward must rise.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cai.config import load_config
from cai.models import resolve_model

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


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> SimpleNamespace:
    return make_data(tmp_path_factory.mktemp("train-data"))


def make_data(d: Path) -> SimpleNamespace:
    """SFT rows, helpful chat rows and preferences in ``d``, as generate-revisions and
    judge write them; the first preference is a near coin flip (p_chosen 0.51)."""
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


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def changed(before: dict, after: dict) -> bool:
    shared = set(before) & set(after)
    return bool(shared) and any(not torch.equal(before[k], after[k]) for k in shared)


def base_weights() -> dict:
    return weights(Path(resolve_model("tiny-random")))


def loads_and_generates(out) -> None:
    """The saved folder is a plain transformers model that generates."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    ids = tok("Hello", return_tensors="pt")
    with torch.no_grad():
        gen = model.generate(
            **ids,
            max_new_tokens=4,
            min_new_tokens=4,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
    assert gen.shape[1] == ids["input_ids"].shape[1] + 4


TRL = {"max_steps": 12, "learning_rate": 5e-3, "per_device_train_batch_size": 4}


@pytest.fixture(scope="session")
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
