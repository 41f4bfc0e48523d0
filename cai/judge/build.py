"""``build_judge``: the one place a ``Judge`` is made, on any engine.

Every judge in cai (``cai judge``, ``cai judge calibrate``, the evaluation's win rates and
refusal judge, the judge reward of GRPO/RLOO and best-of-n, the pipeline's stages) is
built here from a ``BackendConfig`` (transformers, vLLM or an OpenAI-compatible server)
and the judge's settings:

    from cai.config import BackendConfig
    from cai.judge import build_judge

    judge = build_judge(BackendConfig(backend="openai", model="m", base_url=["http://h/v1"]),
                        constitution="harmless", mode="logprob")
    judge.judge([PairItem("p1", conversation, response_a, response_b)])
"""

from __future__ import annotations

from pathlib import Path

from cai.backends.base import Backend, SamplingParams
from cai.config import BackendConfig, JudgeScoring
from cai.constitution import Constitution, load_constitution
from cai.errors import CaiError
from cai.judge.ensemble import Ensemble
from cai.judge.lmscore import check_constitution
from cai.judge.pairwise import Judge, mode_features

COT_CLAMP = (0.4, 0.6)
"""The CAI paper's clamp of a chain-of-thought soft label."""


def build_judge(
    engine: BackendConfig | None = None,
    *,
    backend: Backend | None = None,
    constitution: str | Constitution = "harmless",
    mode: str = "logprob",
    both_orders: bool = True,
    principles: int | str = 1,
    seed: int = 0,
    cot_clamp: bool = True,
    max_new_tokens: int = 256,
    prompts_dir: str | Path | None = None,
    contrast_norm: str = "mean",
    scale: float | None = None,
    ensemble: str | Path | Ensemble | None = None,
) -> Judge:
    """A ``Judge`` on the model and engine of ``engine`` (default ``BackendConfig()``).

    ``backend``: a ready backend to use instead of creating one from ``engine`` (a run
    that shares one, or a test's). ``constitution``: a shipped name, a YAML path or a
    loaded ``Constitution``. ``principles``: comparison questions per pair, a number (or
    its string) or ``"all"``. ``cot_clamp``: in CoT mode, clamp the soft label to
    ``COT_CLAMP``. ``max_new_tokens``: the CoT reasoning (and generated answer) length.
    ``contrast_norm``, ``scale``: the contrast and pointwise modes' settings. ``ensemble``:
    the ensemble mode's fitted weights, a file written by ``cai judge calibrate --mode all``
    (or a loaded ``Ensemble``).
    """
    if (mode == "ensemble") != (ensemble is not None):
        raise CaiError(
            "judge `mode: ensemble` and `ensemble: FILE` go together: give the weights file "
            "that `cai judge calibrate --mode all` wrote (OUTPUT/fits/*.json), or another mode"
        )
    if ensemble is not None and not isinstance(ensemble, Ensemble):
        ensemble = Ensemble.load(Path(ensemble))
    if not isinstance(constitution, Constitution):
        constitution = load_constitution(constitution)
    needs = mode_features(mode, contrast_norm, ensemble)
    check_constitution(constitution, needs)
    if backend is None:
        backend = (engine or BackendConfig()).create()
    return Judge(
        backend=backend,
        constitution=constitution,
        mode=mode,
        both_orders=both_orders,
        principles=principles if principles == "all" else int(principles),
        seed=seed,
        cot_clamp=COT_CLAMP if cot_clamp else None,
        params=SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0),
        prompts_dir=str(prompts_dir) if prompts_dir else None,
        contrast_norm=contrast_norm,
        scale=scale,
        ensemble=ensemble,
    )


def scoring_settings(cfg: JudgeScoring) -> dict:
    """A config's judge-scoring fields as ``build_judge`` keywords."""
    return {
        "mode": cfg.mode,
        "contrast_norm": cfg.contrast_norm,
        "scale": cfg.scale,
        "ensemble": cfg.ensemble,
    }
