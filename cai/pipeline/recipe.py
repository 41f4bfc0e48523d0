"""The recipe of ``cai pipeline``: one YAML file for the whole method.

A recipe names the constitution, the models, the prompt sets, which stages run, and each
stage's settings. A stage's section holds the fields of that stage's own command config
(``ReviseConfig`` for ``revisions``, ``SFTRunConfig`` for ``sft``, ``JudgeConfig`` for
``judge``, and so on); the pipeline fills in the fields that connect the stages (each
stage's output folder and the models and datasets it reads), and those may not be set
in a section. Validation errors name the recipe file, the stage and the field.

Example::

    name: my-cai
    output: out/pipeline/my-cai
    constitution: harmless
    models: {policy: smollm2-135m, judge: smollm2-135m}
    prompts: {red_team: red-team}
    run: [revisions, sft, judge, reward, dpo, evaluate]
    revisions: {limit: 64, sampling: {max_new_tokens: 96}}
    sft: {trl: {max_steps: 16}}
    dpo: {trl: {max_steps: 16, beta: 0.1}}

Iterative rounds (``rounds: N``, after ``dpo`` and before ``ppo``/``grpo``): round ``k``
samples candidates from the current policy and judges them (stage ``roundk-judge``, the
``judge`` section's fields, then ``iterate.judge``), then optimises from that policy with
``iterate.method`` (stage ``roundk-train``, ``iterate.train``); ``iterate.per_round``
changes one round's settings::

    rounds: 3
    iterate:
      method: dpo                       # dpo, ipo, orpo, simpo or kto
      judge: {limit: 64, num_candidates: 4}
      train: {trl: {max_steps: 16, beta: 0.1}}
      per_round: {3: {train: {trl: {beta: 0.2}}}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from cai.config import CaiConfig, JudgeScoring, first_error
from cai.errors import CaiError
from cai.models import DEFAULT_MODEL

STAGES = ("revisions", "sft", "judge", "calibrate", "reward", "dpo", "ppo", "grpo", "evaluate")
"""Every named stage, in the order they run (the rounds' stages come after ``dpo``)."""
ROUND_STAGES = ("judge", "train")
"""The stages of one iterative round, in order: ``round<k>-judge``, ``round<k>-train``."""
IterMethod = Literal["dpo", "ipo", "orpo", "simpo", "kto"]
StageName = Literal["revisions", "sft", "judge", "calibrate", "reward", "dpo", "ppo", "grpo",
                    "evaluate"]  # fmt: skip


class Models(CaiConfig):
    policy: str = DEFAULT_MODEL
    """The base model that SL-CAI and RL start from (a name, folder or Hub id)."""
    judge: str = DEFAULT_MODEL
    """The AI feedback model for `judge`, the judge reward and evaluation win rates."""


class PromptSets(CaiConfig):
    red_team: str = "red-team"
    """Prompts for revisions, candidate sampling and online RL."""
    evaluate: list[str] = ["red-team", "helpful"]
    """Prompt sets for evaluation (a set named helpful/benign counts for the refusal rate)."""


class RoundSettings(CaiConfig):
    """One round's changes (``iterate.per_round``), merged over ``iterate``'s."""

    method: IterMethod | None = None
    """This round's method (default `iterate.method`)."""
    judge: dict[str, Any] = {}
    """This round's `cai judge` fields, over `iterate.judge`."""
    train: dict[str, Any] = {}
    """This round's trainer fields, over `iterate.train`."""


class Iterate(CaiConfig):
    """Iterative preference optimisation: what every round does (``rounds: N``)."""

    method: IterMethod = "dpo"
    """How each round optimises: dpo, ipo (dpo with trl's loss_type ipo), orpo, simpo, or
    kto (its rows from the round's pairs: chosen desirable, rejected undesirable)."""
    judge: dict[str, Any] = {}
    """`cai judge` fields (JudgeConfig) for each round's sampling and judging, over the
    recipe's `judge` section (e.g. `num_candidates`, `limit`, `temperature_range`). Each
    round samples with seed `seed + k`, so rounds see fresh samples."""
    train: dict[str, Any] = {}
    """The method's `cai train` fields (DPORunConfig, ORPORunConfig, SimPORunConfig or
    KTORunConfig), e.g. `trl: {max_steps: 16, beta: 0.1}`."""
    per_round: dict[int, RoundSettings] = {}
    """Changes for single rounds, by round number (1 is the first): `{2: {train: {trl:
    {beta: 0.2}}}}`. A change reruns that round and what follows it."""


class Recipe(CaiConfig):
    """A whole CAI run. Stage sections are validated against their command's config."""

    name: str
    """Names the run, its report and its Hub repos."""
    output: Path = Path("out/pipeline")
    """Every stage writes a folder under here; the report goes to `report/`."""
    seed: int = 0
    """The run's seed, given to every stage."""
    constitution: str = "harmless"
    """The constitution (a shipped name or a YAML path) for revisions and the judge."""
    models: Models = Field(default_factory=Models)
    prompts: PromptSets = Field(default_factory=PromptSets)
    run: list[StageName] = ["revisions", "sft", "judge", "reward", "dpo", "evaluate"]
    """Which stages run; they always run in the pipeline's order."""
    revisions: dict[str, Any] = {}
    sft: dict[str, Any] = {}
    judging: JudgeScoring = Field(default_factory=JudgeScoring)
    """How the recipe's judge scores, for every stage that judges (judge, calibrate,
    evaluate's win rates, a judge reward): `mode` (logprob, debiased, contrast, pointwise,
    ensemble ...), `contrast_norm`, `scale`, `ensemble` (a weights file from `cai judge
    calibrate --mode all`). A stage's own section may still override a field."""
    judge: dict[str, Any] = {}
    calibrate: dict[str, Any] = {}
    """`cai judge calibrate`'s fields (CalibrateConfig): `gold` (a gold-label file, required;
    the stage is skipped, and says so, if it is absent), `limit` or a seeded `sample`,
    `mode` (default the recipe's `judging.mode`; `all` for the every-mode table),
    `verbatim` (logprob only), `judge` (its engine; the model defaults to `models.judge`)."""
    reward: dict[str, Any] = {}
    dpo: dict[str, Any] = {}
    rounds: int = Field(default=0, ge=0, le=100)
    """Iterative rounds of sample, judge, optimise after `dpo` (0: none). Each round starts
    from the previous round's policy (round 1 from the latest of sft and dpo)."""
    iterate: Iterate = Field(default_factory=Iterate)
    """What each round does (see `Iterate`)."""
    ppo: dict[str, Any] = {}
    grpo: dict[str, Any] = {}
    evaluate: dict[str, Any] = {}

    def stages(self) -> list[str]:
        """Every stage that runs, in order, with the rounds' stages after ``dpo``."""
        out = []
        for s in STAGES:
            if s in self.run:
                out.append(s)
            if s == "dpo":
                out += [round_stage(k, part) for k in range(1, self.rounds + 1)
                        for part in ROUND_STAGES]  # fmt: skip
        return out

    @model_validator(mode="after")
    def _rounds_exist(self) -> Recipe:
        if self.rounds == 0 and self.iterate.model_fields_set:
            raise ValueError("iterate is set but rounds is 0; set rounds: N to run N rounds")
        extra = sorted(k for k in self.iterate.per_round if not 1 <= k <= self.rounds)
        if extra:
            raise ValueError(
                f"iterate.per_round names round(s) {extra}, but rounds is {self.rounds}"
            )
        return self


def round_stage(k: int, part: str) -> str:
    """The name (and folder) of round ``k``'s ``part`` stage: ``round2-judge``."""
    return f"round{k}-{part}"


def parse_round(stage: str) -> tuple[int, str] | None:
    """``(k, part)`` of a round stage's name, else None."""
    head, _, part = stage.partition("-")
    if head.startswith("round") and head[5:].isdigit() and part in ROUND_STAGES:
        return int(head[5:]), part
    return None


def load_recipe(path: Path) -> Recipe:
    """Read and validate a recipe; a bad one raises ``CaiError`` naming the field."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise CaiError(f"{path}: cannot read recipe: {e}") from None
    if not isinstance(data, dict):
        raise CaiError(f"{path}: a recipe must be a YAML mapping")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        raise CaiError(f"{path}: {first_error(e)}") from None
    if not recipe.stages():
        raise CaiError(f"{path}: field 'run': name at least one stage (or set rounds)")
    return recipe
