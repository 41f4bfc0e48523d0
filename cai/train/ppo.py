"""``cai train ppo``: PPO with one reward model, on trl's experimental PPOTrainer.

Everything that touches ``trl.experimental.ppo`` lives in this module, because that API is
experimental (it exists in trl up to 1.12 only).

- the policy: ``model``; the frozen reference: ``ref_model`` or a copy of the policy;
- one reward model (``reward_model``, a one-output sequence classifier such as a
  ``cai train reward`` output) and a value model initialised from it unless ``value_model``
  names another. PPO takes a single reward model; for several rewards or the judge, use
  ``cai train grpo``/``rloo``.
- the data: a prompt set, chat-formatted with the generation prompt and tokenised into
  ``input_ids``; prompts over ``max_prompt_tokens`` are dropped with a count.

The reward model must share the policy's tokenizer: PPO hands it token ids.
"""

from __future__ import annotations

import time

from cai import models
from cai.errors import CaiError
from cai.train import common
from cai.train.config import PPORunConfig
from cai.train.online import prompt_dataset


def tokenised_prompts(cfg: PPORunConfig, tok):
    data = prompt_dataset(cfg)

    def encode(row: dict) -> dict:
        text = tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        return {"input_ids": tok(text, add_special_tokens=False)["input_ids"]}

    data = data.map(encode, remove_columns=data.column_names)
    before = len(data)
    data = data.filter(lambda r: len(r["input_ids"]) <= cfg.max_prompt_tokens)
    if len(data) < before:
        print(f"dropped {before - len(data)} prompt(s) over {cfg.max_prompt_tokens} tokens")
    if len(data) == 0:
        raise CaiError(f"{cfg.dataset}: every prompt is over max_prompt_tokens")
    return data


def train_ppo(cfg: PPORunConfig, reward_model=None) -> dict:
    """Train; ``reward_model`` (a loaded one-output classifier) overrides ``cfg.reward_model``."""
    if not cfg.reward_model and reward_model is None:
        raise CaiError(
            "PPO needs a reward model: give --reward-model (e.g. a `cai train reward` output)"
        )
    PPOTrainer = common.trl_class("ppo", "trainer")

    started = time.time()
    model, tok = models.load_causal_lm(cfg.model, cfg.trust_remote_code)
    ref, _ = models.load_causal_lm(cfg.ref_model or cfg.model, cfg.trust_remote_code)
    reward = reward_model
    if reward is None:
        reward, reward_tok = models.load_scalar_model(cfg.reward_model, cfg.trust_remote_code)
        if reward_tok.get_vocab() != tok.get_vocab():
            raise CaiError(
                f"the reward model {cfg.reward_model!r} has a different tokenizer from the "
                f"policy {cfg.model!r}; PPO passes token ids, so train it from the same base"
            )
    value_init = cfg.value_model or cfg.reward_model or cfg.model
    value, _ = models.load_scalar_model(value_init, cfg.trust_remote_code)
    data = tokenised_prompts(cfg, tok)
    args = common.trl_config("ppo", cfg, total_episodes=len(data))
    trainer = PPOTrainer(
        args=args,
        processing_class=tok,
        model=model,
        ref_model=None if cfg.lora.enabled else ref,
        reward_model=reward,
        train_dataset=data,
        value_model=value,
        peft_config=common.peft_config(cfg.lora),
    )
    if cfg.resume_from_checkpoint:
        print("note: trl's PPOTrainer cannot resume from a checkpoint; starting fresh")
    trainer.train()
    extra = {
        "scores": common.log_series(trainer, "objective/scores"),
        "kl": common.log_series(trainer, "objective/kl"),
    }
    info = {"rows": len(data), "provenance": {}}
    return common.finish(trainer, cfg, "ppo", started, info, extra)
