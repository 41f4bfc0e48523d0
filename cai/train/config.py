"""Typed configs of the ``cai train`` commands: defaults, then YAML, then the command line.

Each config holds what ``cai`` itself decides (model, data, output, LoRA, rewards) and a
``trl`` mapping that passes straight to trl's own config class (``SFTConfig``,
``RewardConfig``, ``DPOConfig``, ``PPOConfig``, ``GRPOConfig``, ``RLOOConfig``). Any trl
field can be set there, in YAML under ``trl:`` or with ``--set key=value`` on the command
line; trl's own validation reports unknown or bad fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from cai.config import CaiConfig, RewardSpec
from cai.models import DEFAULT_MODEL


class LoraSettings(CaiConfig):
    """A LoRA adapter (peft) instead of full fine-tuning."""

    enabled: bool = False
    """Train a LoRA adapter; `cai export --merge-lora` merges it afterwards."""
    r: int = Field(default=16, ge=1)
    """The adapter's rank."""
    alpha: int = Field(default=32, ge=1)
    """The adapter's scaling numerator (lora_alpha)."""
    dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the adapter's input."""
    target_modules: list[str] | str = "all-linear"
    """Which modules get adapters: a list of names, or `all-linear`."""


class TrainConfig(CaiConfig):
    """Settings every ``cai train`` command shares."""

    model: str = DEFAULT_MODEL
    """The model to train: a packaged name, a folder (e.g. an earlier `cai train` output) or
    a Hub id."""
    dataset: str = "out/revisions"
    """The training data: a cai output folder, a JSONL/JSON/CSV/Parquet file, a
    `save_to_disk` folder or a Hub dataset id."""
    split: str | None = None
    """The split to train on (default train)."""
    eval_split: str | None = None
    """An optional split of the same dataset to evaluate on (e.g. test)."""
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N training rows."""
    output: Path = Path("out/model")
    """Where the model, tokenizer, config and training summary are saved."""
    seed: int = 0
    """The run's seed (trl's `seed`)."""
    lora: LoraSettings = Field(default_factory=LoraSettings)
    """LoRA settings."""
    trust_remote_code: bool = False
    """Run code from the model's repository. Only for models you trust."""
    resume_from_checkpoint: str | None = None
    """A checkpoint folder to resume from, or `latest` for the newest in `output`."""
    push_to_hub: str | None = None
    """Push the trained model, with a model card, to this Hub repo when done."""
    private: bool = False
    """Make the pushed Hub repo private."""
    trl: dict[str, Any] = {}
    """Fields of trl's config class, passed through as given (e.g. learning_rate,
    max_steps, per_device_train_batch_size, report_to, save_steps)."""


class SFTRunConfig(TrainConfig):
    """``cai train sft``: supervised fine-tuning on revisions (loss on the revision only)."""

    output: Path = Path("out/sft")
    mix: list[str] = []
    """Mix in other data as `DATASET:FRACTION`, the fraction relative to the main dataset's
    size (e.g. `helpful-sft:0.5`); a prompt set is answered by nothing, so give a dataset
    with `prompt` and `completion` (or `messages`)."""


class RewardRunConfig(TrainConfig):
    """``cai train reward``: a one-output sequence classifier on AI preferences."""

    dataset: str = "out/preferences"
    output: Path = Path("out/reward")
    use_margin: bool = False
    """Feed the dataset's `margin` column to the margin loss."""
    min_confidence: float = Field(default=0.05, ge=0, lt=0.5)
    """Drop pairs whose soft label `p_chosen` lies within this distance of 0.5."""


class DPORunConfig(TrainConfig):
    """``cai train dpo``: direct preference optimisation on AI preferences."""

    dataset: str = "out/preferences"
    output: Path = Path("out/dpo")
    min_confidence: float = Field(default=0.0, ge=0, lt=0.5)
    """Drop pairs whose soft label `p_chosen` lies within this distance of 0.5."""


class ORPORunConfig(DPORunConfig):
    """``cai train orpo``: SFT plus an odds-ratio preference loss, no reference model."""

    output: Path = Path("out/orpo")


class SimPORunConfig(DPORunConfig):
    """``cai train simpo``: a length-normalised, reference-free margin loss."""

    output: Path = Path("out/simpo")


class KTORunConfig(TrainConfig):
    """``cai train kto``: learn from unpaired good/bad completions (Ethayarajh et al. 2024).

    The rows come from one of three sources, in this order:
    - `score_column` set: a per-completion score and `threshold` (score >= threshold is
      desirable). The column holds one number per row beside a `completion` column, or a
      list with one number per `candidates` entry (as `cai judge` writes `scores`, and
      `candidate_scores` in pointwise mode: each candidate's own yes/no score);
    - a `label` column (trl's own unpaired format: prompt, completion, label);
    - else a preference dataset: chosen is desirable, rejected undesirable."""

    dataset: str = "out/preferences"
    output: Path = Path("out/kto")
    score_column: str | None = None
    """A per-completion score column (see above); unset: use labels or pairs."""
    threshold: float = 0.0
    """With `score_column`: a score at or above it is desirable."""
    min_confidence: float = Field(default=0.0, ge=0, lt=0.5)
    """From pairs: drop pairs whose `p_chosen` lies within this distance of 0.5."""


class OnlineRunConfig(TrainConfig):
    """``cai train grpo`` / ``cai train rloo``: online RL with reward functions."""

    dataset: str = "red-team"
    output: Path = Path("out/grpo")
    rewards: list[RewardSpec] = []
    """The reward sources. Several are combined by `combine`."""
    combine: Literal["sum", "safety-switch"] = "sum"
    """`sum`: the weighted sum. `safety-switch` (Llama 2): the first reward (safety) when the
    prompt is flagged unsafe or its score is below `safety_threshold`, else the second
    (helpfulness)."""
    safety_threshold: float = 0.15
    """`safety-switch`: the safety score below which safety wins (0.15 in Llama 2)."""
    unsafe_column: str = "unsafe"
    """`safety-switch`: a boolean dataset column that flags unsafe prompts, if present."""

    @model_validator(mode="after")
    def _switch_needs_two(self) -> OnlineRunConfig:
        if self.combine == "safety-switch" and len(self.rewards) != 2:
            raise ValueError("combine: safety-switch needs exactly two rewards (safety, helpful)")
        return self


class PPORunConfig(TrainConfig):
    """``cai train ppo``: PPO with one reward model (trl.experimental.ppo)."""

    dataset: str = "red-team"
    output: Path = Path("out/ppo")
    reward_model: str | None = None
    """The single reward model (a one-output sequence classifier). Required."""
    value_model: str | None = None
    """The value model's initial weights (default: the reward model)."""
    ref_model: str | None = None
    """The frozen reference policy (default: a copy of `model`)."""
    max_prompt_tokens: int = Field(default=256, ge=8)
    """Prompts longer than this (in tokens) are dropped, with a count."""


class OnlineDPORunConfig(OnlineRunConfig):
    """``cai train online-dpo``: online DPO (trl.experimental.online_dpo). Each step samples
    two completions per prompt from the current policy; the judge labels which is better
    (direct RLAIF, beside GRPO/RLOO) and DPO's loss trains on that pair."""

    output: Path = Path("out/online-dpo")
    rewards: list[RewardSpec] = Field(default_factory=lambda: [RewardSpec(kind="judge")])
    """The labeller. One `judge` reward (the default: smollm2-135m with the `harmless`
    constitution; set its `judge`, `constitution`, `mode`, ...) compares the two samples
    of a prompt directly and the one it prefers is chosen. Other rewards (reward models,
    toxicity) score each sample and the higher sum is chosen, as in trl."""
