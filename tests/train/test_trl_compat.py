"""trl's trainers take what generate-revisions writes: SFT (loss on the revision) and DPO."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import load_dataset

from cai.config import ReviseConfig, load_config
from cai.models import resolve_model
from cai.revise import run_revisions


@pytest.fixture(scope="module")
def revisions(tmp_path_factory):
    out = tmp_path_factory.mktemp("rev") / "out"
    overrides = {
        "output": out,
        "limit": 8,
        "no_cache": True,
        "backend": {"model": "tiny-random", "batch_size": 8},
        "sampling": {"max_new_tokens": 12, "temperature": 1.0},
    }
    run_revisions(load_config(ReviseConfig, None, overrides))
    return load_dataset(str(out))["train"]


def make_trainer(trainer_cls, config_cls, dataset, tmp_path):
    """A trainer on a fresh tiny model, two steps, CPU; returns it and a weight snapshot."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model("tiny-random")
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    args = config_cls(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                      learning_rate=1e-2, bf16=False, report_to=[], save_strategy="no",
                      logging_steps=1, use_cpu=True)  # fmt: skip
    trainer = trainer_cls(model=model, args=args, processing_class=tok, train_dataset=dataset)
    return trainer, before


def weights_changed(trainer, before) -> bool:
    return any(not torch.equal(before[k], v) for k, v in trainer.model.named_parameters())


def test_sft_trains_with_loss_on_the_revision_only(revisions, tmp_path):
    from trl import SFTConfig, SFTTrainer

    data = revisions.select_columns(["prompt", "completion"])
    trainer, before = make_trainer(SFTTrainer, SFTConfig, data, tmp_path)
    tok = trainer.processing_class
    example = trainer.train_dataset[0]
    mask = [label != -100 for label in example["labels"]]
    assert 0 < sum(mask) < len(mask)
    # The tokens that carry loss are exactly the revision (and its end-of-turn token).
    trained = [t for t, m in zip(example["input_ids"], mask) if m]
    revision = revisions[0]["completion"][0]["content"]
    assert tok.decode(trained, skip_special_tokens=True).strip() == revision.strip()
    assert tok.eos_token_id in trained[-2:]  # "<|im_end|>" then ChatML's newline
    untrained = tok.decode([t for t, m in zip(example["input_ids"], mask) if not m])
    assert revisions[0]["prompt"][-1]["content"] in untrained
    batch = trainer.data_collator([example])
    assert (batch["labels"] != -100).sum() == sum(mask)
    trainer.train()
    assert weights_changed(trainer, before)
    assert all("loss" in h for h in trainer.state.log_history[:2])


def test_dpo_trains_on_chosen_and_rejected(revisions, tmp_path):
    from trl import DPOConfig, DPOTrainer

    data = revisions.select_columns(["prompt", "chosen", "rejected"])
    trainer, before = make_trainer(DPOTrainer, DPOConfig, data, tmp_path)
    trainer.train()
    assert weights_changed(trainer, before)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(loss == loss for loss in losses)  # finite, not NaN


@pytest.fixture(scope="module")
def preferences(revisions, tmp_path_factory):
    from cai.config import JudgeConfig
    from cai.judge import run_judge

    src = tmp_path_factory.mktemp("src") / "rev"
    revisions.save_to_disk(str(src))
    out = tmp_path_factory.mktemp("judged") / "out"
    overrides = {"prompts": str(src), "output": out, "judge": {"model": "tiny-random"}}
    run_judge(load_config(JudgeConfig, None, overrides))
    return load_dataset(str(out))["train"]


def test_judge_output_has_soft_labels_and_both_orders(preferences, revisions):
    by_id = {r["id"]: r for r in revisions}
    for row in preferences:
        source = by_id[row["id"]]
        # The candidates are the revision and the initial answer, in that order.
        assert row["candidates"] == [source["revision"], source["initial_response"]]
        (comparison,) = row["comparisons"]
        i, j, p_i = comparison["i"], comparison["j"], comparison["p_i"]
        # Chosen is the candidate the judge preferred, p_chosen its probability.
        winner, loser = (i, j) if p_i >= 0.5 else (j, i)
        assert row["chosen"][0]["content"] == row["candidates"][winner]
        assert row["rejected"][0]["content"] == row["candidates"][loser]
        assert row["p_chosen"] == pytest.approx(max(p_i, 1 - p_i))
        assert len(row["p_chosen_by_order"]) == 2
        assert row["p_chosen"] == pytest.approx(sum(row["p_chosen_by_order"]) / 2)
        assert row["margin"] == pytest.approx(math.log(row["p_chosen"] / (1 - row["p_chosen"])))
        assert row["provenance"]["mode"] == "logprob"


def test_reward_trainer_takes_judge_output(preferences, tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    path = resolve_model("tiny-random")
    cfg = AutoConfig.from_pretrained(path)
    cfg.num_labels = 1
    model = AutoModelForSequenceClassification.from_pretrained(path, config=cfg)
    tok = AutoTokenizer.from_pretrained(path)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    args = RewardConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                        learning_rate=1e-2, bf16=False, report_to=[], save_strategy="no",
                        logging_steps=1, use_cpu=True)  # fmt: skip
    data = preferences.select_columns(["prompt", "chosen", "rejected", "margin"])
    trainer = RewardTrainer(model=model, args=args, processing_class=tok, train_dataset=data)
    trainer.train()
    assert any(not torch.equal(before[k], v) for k, v in model.named_parameters())


def test_dpo_trainer_takes_judge_output(preferences, tmp_path):
    from trl import DPOConfig, DPOTrainer

    data = preferences.select_columns(["prompt", "chosen", "rejected"])
    trainer, before = make_trainer(DPOTrainer, DPOConfig, data, tmp_path)
    trainer.train()
    assert weights_changed(trainer, before)
