"""Typed configs, with one order of precedence: defaults, then YAML, then the command line.

Each command's config is a pydantic model whose fields are documented where they are
declared. ``load_config`` merges a YAML file (``--config``) and the options given on the
command line (only those the user actually set) over the defaults, and reports errors
with the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from cai.backends.base import Backend, SamplingParams
from cai.errors import CaiError
from cai.models import DEFAULT_MODEL


class CaiConfig(BaseModel):
    """The base of every cai config: unknown fields are errors; field docstrings document."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class BackendConfig(CaiConfig):
    """Which engine runs the model, and how."""

    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    """`transformers` runs the model in-process; `vllm` runs it in-process on vLLM's engine;
    `openai` talks to an OpenAI-compatible server."""
    model: str = DEFAULT_MODEL
    """A packaged name (smollm2-135m, qwen2.5-coder-0.5b, tiny-random), a folder or a Hub id."""
    batch_size: int = Field(default=16, ge=1)
    """transformers: rows per generate call or forward pass."""
    device: str = "auto"
    """transformers: auto, cpu, cuda, cuda:N."""
    dtype: str = "auto"
    """transformers: auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16."""
    trust_remote_code: bool = False
    """transformers, vllm: run code from the model's repository. Only for models you trust."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """vllm: GPUs to shard the model over."""
    enable_prefix_caching: bool = True
    """vllm: reuse the key/value blocks of shared prompt prefixes (the few-shot block)."""
    max_model_len: int | None = None
    """vllm: context length to reserve memory for; default the model's own."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    """vllm: share of GPU memory the engine may take."""
    enforce_eager: bool = False
    """vllm: no CUDA graphs or torch.compile; starts faster, decodes slower."""
    block_size: int | None = None
    """vllm: tokens per key/value block; prefix caching reuses only whole blocks."""
    cpu_kv_cache_gib: float = Field(default=4.0, gt=0)
    """vllm on CPU: key/value cache size in GiB (unless VLLM_CPU_KVCACHE_SPACE is set)."""
    base_url: list[str] = ["http://127.0.0.1:8000/v1"]
    """openai: one or more base URLs, shared round-robin."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai: the environment variable that holds the API key (never logged)."""
    max_in_flight: int = Field(default=16, ge=1)
    """openai: most concurrent requests."""
    timeout: float = Field(default=60.0, gt=0)
    """openai: overall deadline per request attempt, in seconds (connect, wait and read
    together); past it the attempt counts as a timeout and is retried."""
    max_retries: int = Field(default=5, ge=0)
    """openai: retries on 429, 5xx and timeouts, with exponential backoff."""
    tokenizer: str | None = None
    """openai: a local tokenizer (model name or folder) for exact option scoring via echo."""

    def create(self) -> Backend:
        """Instantiate the backend this config describes."""
        from cai.backends import load_backend

        if self.backend == "transformers":
            opts: dict[str, Any] = {
                "batch_size": self.batch_size,
                "device": self.device,
                "dtype": self.dtype,
                "trust_remote_code": self.trust_remote_code,
            }
        elif self.backend == "vllm":
            opts = {
                "tensor_parallel_size": self.tensor_parallel_size,
                "enable_prefix_caching": self.enable_prefix_caching,
                "dtype": self.dtype,
                "max_model_len": self.max_model_len,
                "gpu_memory_utilization": self.gpu_memory_utilization,
                "enforce_eager": self.enforce_eager,
                "block_size": self.block_size,
                "cpu_kv_cache_gib": self.cpu_kv_cache_gib,
                "trust_remote_code": self.trust_remote_code,
            }
        else:
            opts = {
                "base_url": self.base_url,
                "api_key_env": self.api_key_env,
                "max_in_flight": self.max_in_flight,
                "timeout": self.timeout,
                "max_retries": self.max_retries,
                "tokenizer": self.tokenizer,
            }
        return load_backend(self.backend, self.model, **opts)


def backend_from_name(value: Any) -> Any:
    """A bare model name stands for ``BackendConfig(model=name)`` (older configs gave the
    judge as a string)."""
    return {"model": value} if isinstance(value, str) else value


ModelEngine = Annotated[BackendConfig, BeforeValidator(backend_from_name)]
"""A model and its engine: a ``BackendConfig``, or a bare model name for the transformers
engine. Every config field that names a judge (or a policy) has this type."""


def _legacy_judge_model(data: Any) -> Any:
    """Map an older config's ``judge_model: NAME`` onto ``judge``: the judge's model
    (``judge.model``), keeping whatever engine settings ``judge`` already gives."""
    if not isinstance(data, dict) or "judge_model" not in data:
        return data
    data = dict(data)
    name = data.pop("judge_model")
    current = data.get("judge")
    if isinstance(name, str) and isinstance(current, dict):
        data["judge"] = {**current, "model": name}
    elif isinstance(name, str) and isinstance(current, BackendConfig):
        data["judge"] = current.model_copy(update={"model": name})
    else:
        data["judge"] = name
    return data


class SamplingConfig(CaiConfig):
    """Sampling settings; see ``cai.backends.base.SamplingParams``.

    A packaged model's family brings its own defaults (``cai.models.GENERATION_DEFAULTS``,
    chosen by the revision-quality study). The order of precedence is: the command line,
    then the YAML, then the model registry, then the defaults below. ``params(model=...)``
    resolves it; provenance records the resolved values."""

    max_new_tokens: int = Field(default=256, ge=1)
    """Most tokens to generate per answer."""
    temperature: float = Field(default=0.7, ge=0)
    """0 means greedy."""
    top_p: float = Field(default=0.9, gt=0, le=1)
    """Nucleus sampling mass (1.0 is off)."""
    min_p: float = Field(default=0.0, ge=0, lt=1)
    """Min-p sampling: drop tokens less likely than min_p times the top token (after
    temperature). 0 is off. Works with top_p; every backend applies it."""
    repetition_penalty: float = Field(default=1.0, gt=0)
    """Penalises tokens already generated in this answer (never the prompt's); 1.0 is off.
    The vllm and openai backends cannot apply it and refuse any value other than 1.0.
    A model family may set its own default (`cai models list` shows them)."""
    stop: list[str] = []
    """Extra stop strings."""
    seed: int = 0
    """The run's seed."""

    def registry_defaults(self, model: str | None, backend: str = "transformers") -> dict:
        """The model registry's values for the fields the user did not set (in YAML or on
        the command line). A penalty is left out on the vllm and openai backends, which
        cannot apply it."""
        from cai.models import generation_defaults

        fields = type(self).model_fields
        found = {
            k: v
            for k, v in generation_defaults(model).items()
            if k in fields and k not in self.model_fields_set
        }
        if backend != "transformers":
            found.pop("repetition_penalty", None)
        return found

    def params(
        self, n: int = 1, model: str | None = None, backend: str = "transformers"
    ) -> SamplingParams:
        """The resolved settings: given > YAML > ``model``'s registry defaults > defaults."""
        values = {**self.model_dump(), **self.registry_defaults(model, backend)}
        return SamplingParams(
            max_new_tokens=values["max_new_tokens"],
            temperature=values["temperature"],
            top_p=values["top_p"],
            min_p=values["min_p"],
            repetition_penalty=values["repetition_penalty"],
            stop=tuple(values["stop"]),
            seed=values["seed"],
            n=n,
        )


C = TypeVar("C", bound=BaseModel)


def read_yaml(path: Path) -> dict[str, Any]:
    """A ``--config`` file as a mapping; a file that cannot be read is one ``CaiError``."""
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise CaiError(f"{path}: cannot read config: {e}") from None
    if not isinstance(loaded, dict):
        raise CaiError(f"{path}: a config file must be a YAML mapping")
    return loaded


def load_config(cls: type[C], path: Path | None = None, overrides: dict | None = None) -> C:
    """Build ``cls`` from its defaults, then the YAML at ``path``, then ``overrides``.

    ``overrides`` holds only what the user set on the command line (``None`` values are
    ignored). Nested configs take nested dicts. Errors name the file and the field.
    """
    data: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        source = str(path)
        data = read_yaml(path)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if isinstance(value, dict):
            given = {k: v for k, v in value.items() if v is not None}
            data[key] = {**(data.get(key) or {}), **given}
        else:
            data[key] = value
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise CaiError(f"{source}: {first_error(e)}") from None


def first_error(e: ValidationError) -> str:
    """A validation error as one phrase that names the field: "field 'x.y': message"."""
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
    return f"field {field!r}: {msg}"


def _fraction_or_count(v: float | int) -> float | int:
    if v >= 1:
        if v != int(v):
            raise ValueError("give a fraction in (0, 1) or a whole number of rows")
        return int(v)
    return v


TestSize = Annotated[float | int, Field(ge=0), AfterValidator(_fraction_or_count)]


class ReviseConfig(CaiConfig):
    """Settings of ``cai generate-revisions``. Every field can be set in ``--config`` YAML."""

    prompts: str = "red-team"
    """A shipped prompt set (red-team, helpful), a JSONL/JSON/CSV/Parquet file, a
    `save_to_disk` folder or a Hub dataset id."""
    split: str | None = None
    """The split of a Hub dataset or DatasetDict folder (default train)."""
    prompt_column: str | None = None
    """The column that holds the prompt; detected when not given."""
    limit: int | None = Field(default=None, ge=1)
    """Take only the first N rows of the input."""
    output: Path = Path("out/revisions")
    """The output folder: dataset shards, card, rows journal, rejects and run.json."""
    constitution: str = "harmless"
    """A shipped constitution name or a YAML path."""
    rounds: int = Field(default=1, ge=1)
    """Critique-and-revise rounds per prompt, each with a freshly sampled principle."""
    principles: Literal["sample", "all"] = "sample"
    """`sample`: one sampled principle per round. `all`: one round per principle, in order."""
    few_shot: bool = True
    """Put the constitution's worked examples before each critique (the paper's method).
    A model family may turn them off by default (`cai models list`; small models copy
    them)."""
    few_shot_examples: int | None = Field(default=None, ge=1)
    """Use at most this many of the worked examples, in file order (default: all)."""
    critique_temperature: float | None = Field(default=None, ge=0)
    """The critique stage's temperature (default: `temperature`); cooler critiques stay
    on the answer."""
    revision_temperature: float | None = Field(default=None, ge=0)
    """The revision stage's temperature (default: `temperature`)."""
    skip_unneeded: bool = False
    """Skip a revision when the critique says nothing needs to change."""
    prompts_dir: Path | None = None
    """A folder whose templates override the shipped ones by name."""
    quality: bool = True
    """Score the finished rows (`cai quality`): fluency under `quality_reference`, changed,
    echo, leak, loop, off-topic, toxicity and refusal before and after; the report goes into
    run.json's summary and the dataset card, and each row gets a `quality` column."""
    quality_gate: bool = False
    """Drop rows that fail any quality check into rejects.jsonl, with their flags as the
    reason (implies `quality`). The report is of all rows, before the gate."""
    quality_reference: str = DEFAULT_MODEL
    """The fixed reference model that scores fluency (fp32, plain decoding), whatever model
    generated the text, so that figures compare across settings."""
    backend: BackendConfig = Field(default_factory=BackendConfig)
    """The model and engine."""
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    """Sampling settings; `sampling.seed` is the run's seed."""
    chunk_size: int = Field(default=64, ge=1)
    """Rows per chunk: each stage is one batched call per chunk, and finished chunks are saved."""
    concurrent_chunks: int = Field(default=1, ge=1)
    """Chunks in flight at once, in threads. For the openai backend: with small chunks
    (`chunk_size: 8`, `concurrent_chunks: 4`) one chunk's next turn starts while another's
    slowest answers finish, so the server's batch stays full. In-process backends: keep 1."""
    test_size: TestSize = 0
    """Held-out rows: a fraction in (0, 1) or a count."""

    split_scheme: Literal["default", "cai-recipe"] = "default"
    """`default`: train/test. `cai-recipe`: train_sft/test_sft/train_prefs/test_prefs."""
    num_shards: int = Field(default=1, ge=1)
    """Split the input into this many deterministic shards (for job arrays)."""
    shard_index: int = Field(default=0, ge=0)
    """Which shard this run processes."""
    cache: Path | None = None
    """The generation cache (SQLite); default $CAI_CACHE/generations.sqlite."""
    no_cache: bool = False
    """Do not read or write the generation cache."""
    allow_partial: bool = False
    """Read a cai output folder whose run is unfinished (`complete: false` in its run.json),
    with a warning; by default such an input is refused."""
    push_to_hub: str | None = None
    """Push the dataset to this Hub repo when done (token from HF_TOKEN or `hf auth login`)."""
    private: bool = False
    """Make the pushed Hub repo private."""


class QualityConfig(CaiConfig):
    """Settings of ``cai quality``: the quality report of a generate-revisions output."""

    reference: str = DEFAULT_MODEL
    """The fixed reference model that scores fluency (fp32, plain decoding)."""
    constitution: str | None = None
    """The constitution whose worked examples a revision must not copy (default: the
    run's own, from its run.json)."""
    batch_size: int = Field(default=16, ge=1)
    """Texts per forward pass of the reference model."""
    report: Path | None = None
    """Where to write the report (JSON); default `quality.json` in the output folder. The
    per-row records go beside it, in `<name>_rows.jsonl` (`quality_rows.jsonl`)."""


JudgeMode = Literal[
    "logprob", "debiased", "cot", "generate", "contrast", "likelihood", "pointwise", "ensemble"
]


class JudgeScoring(CaiConfig):
    """How a judge scores a pair: the fields every config that builds a judge shares."""

    mode: JudgeMode = "logprob"
    """How the judge scores a pair. logprob: P(" (A)") against P(" (B)") after "(A) or
    (B)?", both orders. debiased: logprob with the judge's prior for (A) (read with "N/A"
    answers) divided out. cot:
    reasoning first. generate: parse a generated letter. contrast: how much likelier each
    response is under a persona that follows the principle than under one that violates it
    (the constitution's `contrast`). likelihood: how likely each response is (per
    character) under the following persona alone. pointwise: P(Yes) - P(No) of the
    principle's yes/no question about each response alone (`pointwise`). ensemble:
    weights fitted by `cai judge calibrate --mode all` over those scores (`ensemble`)."""
    contrast_norm: Literal["mean", "sum"] = "mean"
    """contrast: the log-likelihood ratio per character of the response (mean) or summed."""
    scale: float | None = Field(default=None, gt=0)
    """contrast, likelihood, pointwise: the soft label is sigmoid(scale * score difference);
    default the mode's documented scale (cai.judge.pairwise.DEFAULT_SCALE). A fitted one comes as
    an `ensemble` file."""
    ensemble: Path | None = None
    """ensemble: the fitted weights, a JSON file written by `cai judge calibrate --mode all`
    (e.g. out/calibration/fits/ensemble-lm.json); its sha256 goes into provenance."""


class JudgeConfig(JudgeScoring):
    """Settings of ``cai judge``. Every field can be set in ``--config`` YAML."""

    prompts: str = "out/revisions"
    """Prompts with candidates: a cai output folder, a file, a save_to_disk folder or a Hub id.
    Candidates come from a list column (candidates/responses/completions), chosen/rejected,
    or response_a/response_b; or are sampled with `num_candidates` and `policy`."""
    split: str | None = None
    """The split to read (default train)."""
    prompt_column: str | None = None
    """The column that holds the prompt; detected when not given."""
    limit: int | None = Field(default=None, ge=1)
    """Take only the first N rows."""
    output: Path = Path("out/preferences")
    """The output folder."""
    constitution: str = "harmless"
    """Where the comparison questions come from."""
    both_orders: bool = True
    """Judge every pair as (a, b) and (b, a) and average: controls position bias."""
    principles: str = "1"
    """Comparison questions per pair: a number, or `all` for an ensemble of every principle."""
    cot_clamp: bool = True
    """In CoT mode, clamp the stored soft label to [0.4, 0.6] as the CAI paper does."""
    judge: ModelEngine = Field(default_factory=BackendConfig)
    """The judge model and engine (may be an API model through the openai backend); a bare
    name means that model on transformers."""
    judge_max_new_tokens: int = Field(default=256, ge=1)
    """CoT reasoning length."""
    num_candidates: int | None = Field(default=None, ge=2)
    """Sample this many responses per prompt from `policy` instead of reading candidates."""
    policy: ModelEngine | None = None
    """The policy that samples candidates (with `num_candidates`)."""
    temperature_range: tuple[float, float] = (0.6, 1.2)
    """Sampled candidates spread their temperatures evenly over this range."""
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    """Policy sampling settings; `sampling.seed` is the run's seed."""
    pair_budget: int | None = Field(default=None, ge=1)
    """With K > 2 candidates: judge at most this many pairs per prompt (default: all)."""
    emit_pairs: Literal["best-worst", "all"] = "best-worst"
    """With K > 2 candidates: one best-vs-worst row per prompt, or one row per judged pair
    (chosen = the higher Bradley-Terry score, with its margin)."""
    verify_revisions: float | None = Field(default=None, ge=0, le=1)
    """With a generate-revisions output: keep only rows where the judge prefers the revision
    to the initial answer with at least this probability (e.g. 0.5), and report the share
    kept per principle."""
    chunk_size: int = Field(default=64, ge=1)
    """Rows per chunk; finished chunks are saved."""
    test_size: TestSize = 0
    """Held-out rows: a fraction in (0, 1) or a count."""
    num_shards: int = Field(default=1, ge=1)
    """Deterministic shards, for job arrays."""
    shard_index: int = Field(default=0, ge=0)
    """Which shard this run processes."""
    prompts_dir: Path | None = None
    """Template overrides."""
    allow_partial: bool = False
    """Read a cai output folder whose run is unfinished (`complete: false` in its run.json),
    with a warning; by default such an input is refused."""
    push_to_hub: str | None = None
    """Push the dataset to this Hub repo when done."""
    private: bool = False
    """Make the Hub repo private."""


class CalibrateConfig(JudgeScoring):
    """Settings of ``cai judge calibrate`` and of the pipeline's `calibrate` stage: the
    judge measured on gold-labelled pairs. Every field can be set in ``--config`` YAML."""

    gold: Path
    """Gold pairs: the CAI paper's HHH evaluation format, or prompt/chosen/rejected JSONL.
    Required. In the pipeline a missing file skips the stage, and the status and report
    say so."""
    output: Path = Path("out/calibration")
    """The report folder: report.json and reliability.png."""
    judge: ModelEngine = Field(default_factory=BackendConfig)
    """The judge model and engine; a bare name means that model on transformers.
    (`judge_model: NAME` in older configs sets its model.)"""
    constitution: str = "harmless"
    """Where the comparison questions, personas and yes/no questions come from."""
    mode: Literal[JudgeMode, "all"] = "logprob"  # type: ignore[valid-type]
    """One judge mode (see `cai judge --help`), or `all`: every scoring mode on the same
    pairs in one table (logprob, debiased, contrast, likelihood, pointwise; fitted scales
    and ensembles reported out of fold), with the fitted weights written to `fits/`."""
    verbatim: bool = True
    """logprob: show the gold file's own prompts and their swapped order;
    false re-renders each pair with our template and the constitution's questions. The
    other modes always re-render (they never show both responses in one prompt)."""
    folds: int = Field(default=5, ge=2)
    """`mode: all` and `mode: ensemble`: cross-validation folds; every fitted figure comes
    from held-out pairs."""
    principles: str = "1"
    """`verbatim: false`: comparison questions per pair, a number or `all`."""
    judge_max_new_tokens: int = Field(default=256, ge=1)
    """CoT reasoning length."""
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N pairs."""
    sample: int | None = Field(default=None, ge=1)
    """Judge a random N of the pairs, drawn with `seed` (the gold file may be sorted)."""
    seed: int = 0
    """Seed for principle sampling, the subsample and the bootstrap."""
    prompts_dir: Path | None = None
    """Template overrides."""

    _judge_model = model_validator(mode="before")(_legacy_judge_model)


class EvalConfig(JudgeScoring):
    """Settings of ``cai evaluate``. Every field can be set in ``--config`` YAML."""

    models: list[str] = [DEFAULT_MODEL]
    """The models to compare (names, folders such as `cai train` outputs, or Hub ids)."""
    baseline: str | None = None
    """The model others are judged against (default: the first of `models`)."""
    prompts: list[str] = ["red-team", "helpful"]
    """Prompt sets: shipped names or files. A set whose name contains "helpful" or
    "benign", or a row with `"benign": true`, counts as benign (refusal rate)."""
    responses: str | None = None
    """Score existing responses instead of generating: a dataset with `prompt`, `response`
    (or `completion`) and `model` columns."""
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N prompts of each set."""
    samples: int = Field(default=1, ge=1)
    """Samples per prompt (K), for expected maximum toxicity and toxicity probability."""
    output: Path = Path("out/eval")
    """The report folder."""
    batch_size: int = Field(default=16, ge=1)
    """transformers: rows per generate call (the evaluated models, and the judge unless
    `judge.batch_size` is set)."""
    engine: BackendConfig = Field(default_factory=BackendConfig)
    """How the evaluated models generate, e.g. `{backend: vllm}` on a GPU; its `model` is
    replaced by each of `models` and its `batch_size` by the one above. The judge has its
    own engine (`judge`); the scorers run on transformers."""
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    """How the models answer; `sampling.seed` is the run's seed."""
    toxicity: str = "jigsaw"
    """`jigsaw` (the packaged offline classifier) or a Hugging Face classifier (name/path)."""
    threshold: float = Field(default=0.5, gt=0, lt=1)
    """A response is toxic above this toxicity score."""
    profanity: bool = True
    """Add alt-profanity-check's score when it is installed."""
    relevance: bool = True
    """Prompt–response relevance from the packaged MiniLM model."""
    reward_models: list[str] = []
    """Reward models (e.g. from `cai train reward`) whose scores count as helpfulness."""
    judge: ModelEngine | None = Field(default_factory=BackendConfig)
    """The judge for win rates against the baseline (both orders) and for `refusal_judge`:
    a model name, or a model and its engine (e.g. `{backend: openai, model: NAME,
    base_url: [URL]}`); null to skip. (`judge_model: NAME` in older configs sets its model.)"""
    constitution: str = "harmless"
    """The judge's comparison questions."""
    refusal_judge: bool = False
    """Ask the judge whether a response refuses, instead of the phrase detector."""
    bootstrap: int = Field(default=1000, ge=100)
    """Bootstrap resamples for confidence intervals."""

    _judge_model = model_validator(mode="before")(_legacy_judge_model)

    @property
    def judge_model(self) -> str | None:
        """The judge's model name (None when there is no judge); settable, for older callers."""
        return self.judge.model if self.judge is not None else None

    @judge_model.setter
    def judge_model(self, name: str | None) -> None:
        if name is None:
            self.judge = None
        elif self.judge is None:
            self.judge = BackendConfig(model=name)
        else:
            self.judge = self.judge.model_copy(update={"model": name})


class RewardSpec(JudgeScoring):
    """One reward source for online RL and best-of-n. A `judge` reward scores with the
    judge fields (`mode`, `scale`, `ensemble` ...); `mode: pointwise` rewards each
    completion alone, with no baseline answer."""

    kind: Literal["model", "judge", "toxicity"] = "model"
    """`model`: a sequence classifier (e.g. from `cai train reward`). `judge`: the `cai judge`
    reward, 2·P(completion ≻ baseline) − 1. `toxicity`: minus the toxicity score."""
    path: str | None = None
    """`model`: the reward model. `toxicity`: a Hugging Face toxicity classifier (default:
    the packaged Jigsaw model). (`judge`: older configs named the judge model here; it
    moves to `judge`.)"""
    judge: ModelEngine | None = None
    """`judge`: the judge model and its engine, or a bare model name (default smollm2-135m
    on transformers)."""
    weight: float = 1.0
    """Its weight in a weighted sum."""
    constitution: str = "harmless"
    """`judge`: where the comparison questions come from."""

    @model_validator(mode="before")
    @classmethod
    def _judge_path(cls, data: Any) -> Any:
        """A judge reward named by ``path`` (older configs) names it by ``judge``."""
        if isinstance(data, dict) and data.get("kind") == "judge" and data.get("path"):
            if data.get("judge") is not None:
                raise ValueError("a judge reward names its model by `judge`, not also `path`")
            data = {**data, "judge": data["path"], "path": None}
        return data

    @model_validator(mode="after")
    def _judge_only_for_judge(self) -> RewardSpec:
        if self.judge is not None and self.kind != "judge":
            raise ValueError(f"`judge` is for a reward of kind judge, not {self.kind}")
        return self


class BestOfNConfig(CaiConfig):
    """``cai best-of-n``: rejection sampling (Llama 2): keep the best of N samples."""

    prompts: str = "red-team"
    """The prompts: a shipped set, a file, a folder or a Hub id."""
    split: str | None = None
    """The split to read."""
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N prompts."""
    output: Path = Path("out/best-of-n")
    """The output folder (an SFT dataset, resumable)."""
    n: int = Field(default=4, ge=2)
    """Samples per prompt."""
    policy: BackendConfig = Field(default_factory=BackendConfig)
    """The model that samples."""
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    """Sampling settings; `sampling.seed` is the run's seed."""
    rewards: list[RewardSpec] = []
    """The reward(s) that pick the best sample, combined as in online RL."""
    combine: Literal["sum", "safety-switch"] = "sum"
    """How several rewards combine (see `cai train grpo`)."""
    safety_threshold: float = 0.15
    """`safety-switch`: the safety score below which safety wins."""
    unsafe_column: str = "unsafe"
    """`safety-switch`: a boolean column that flags unsafe prompts."""
    chunk_size: int = Field(default=32, ge=1)
    """Prompts per chunk; finished chunks are saved."""
    test_size: TestSize = 0
    """Held-out rows: a fraction in (0, 1) or a count."""
    push_to_hub: str | None = None
    """Push the dataset to this Hub repo when done."""
    private: bool = False
    """Make the Hub repo private."""
