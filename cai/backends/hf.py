"""The transformers backend: real batching on CPU or GPU, and option scoring by forward pass.

Generation sorts conversations by length, left-pads each batch and calls ``generate``
once per batch, with the model's chat template, stop strings and a seed. The repetition
penalty counts the answer's tokens only, on both engines (``SamplingParams``). Option
scoring never calls ``generate``: it is one forward pass over each batch of
``conversation + option`` sequences, keeping only the logits it needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

from cai import progress
from cai.backends.base import (
    Conversation,
    Generation,
    Options,
    SamplingParams,
    cut_at_stop,
    option_token_ids,
    options_for_each,
    render_chat,
)
from cai.backends.decode import Decoder, penalize, row_seed
from cai.models import resolve_model


def _batches(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class _TokenCounter:
    """A ``generate`` streamer that reports each step's new non-pad tokens to ``progress``."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # the first call carries the prompts
            self.prompt_seen = True
            return
        progress.add_tokens(int((value != self.pad_id).sum()))

    def end(self) -> None:
        pass


class AnswerRepetitionPenalty(LogitsProcessor):
    """cai's repetition penalty for ``generate``: only tokens after the first
    ``prompt_len`` positions (the left-padded prompt, common to the batch) are penalised.

    transformers' own ``repetition_penalty`` also penalises every prompt token.
    """

    def __init__(self, penalty: float, prompt_len: int) -> None:
        self.penalty = penalty
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        answer = input_ids[:, self.prompt_len :]
        seen = torch.zeros_like(scores, dtype=torch.bool)
        if answer.shape[1]:
            seen.scatter_(1, answer, True)
        return penalize(scores, seen, self.penalty)


class TransformersBackend:
    """Runs a causal LM in-process with transformers.

    Args:
        model: a packaged name (``smollm2-135m``, ``tiny-random``, ...), a folder or a Hub id.
        batch_size: rows per ``generate`` call or forward pass.
        device: ``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: ``"auto"`` (bfloat16 on CUDA, float32 on CPU), or a torch dtype name.
        trust_remote_code: only if you trust the model's repository; off by default.
        engine: ``"cai"`` (default) decodes with ``cai.backends.decode``: shared-prefix
            reuse, preallocated cache, per-row seeds. ``"hf"`` calls ``model.generate``.
    """

    name = "transformers"

    def __init__(
        self,
        model: str,
        batch_size: int = 16,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        engine: str = "cai",
    ) -> None:
        if engine not in ("cai", "hf"):
            raise ValueError(f"engine must be 'cai' or 'hf', not {engine!r}")
        self.engine = engine
        self.model_name = model
        self.batch_size = max(1, int(batch_size))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if dtype == "auto":
            dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(
            path, padding_side="left", trust_remote_code=trust_remote_code
        )
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code
        ).to(self.device)
        self.model.eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad_id = self.tokenizer.pad_token_id
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {i for i in [*eos, self.tokenizer.eos_token_id] if i is not None}
        self.decoder = Decoder(self.model, self.pad_id, self.eos_ids)

    # ------------------------------------------------------------------ helpers

    @property
    def context_length(self) -> int | None:
        """The model's maximum sequence length, if its config says."""
        return getattr(self.model.config, "max_position_embeddings", None)

    def count_tokens(self, conversations: list[Conversation]) -> list[int]:
        """Prompt tokens of each conversation, as the model would see it."""
        return [len(ids) for ids in self.encode(conversations)]

    def render(self, conversation: Conversation) -> str:
        """The chat-template text; an open final assistant message is continued."""
        return render_chat(self.tokenizer, conversation)

    def encode(self, conversations: list[Conversation]) -> list[list[int]]:
        texts = [self.render(c) for c in conversations]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _finish(self, tokens: list[int], stops: tuple[str, ...]) -> Generation:
        """Cut a generated row at its end-of-turn token or stop string and count tokens."""
        body, count, reason = tokens, len(tokens), "length"
        for i, t in enumerate(tokens):
            if t in self.eos_ids:
                body, count, reason = tokens[:i], i + 1, "stop"
                break
        if reason == "length" and self.pad_id not in self.eos_ids:
            while body and body[-1] == self.pad_id:
                body = body[:-1]
            count = len(body)
        decode = self.tokenizer.decode
        text = decode(body, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, stops)
        if stopped:  # count up to the token that completed the stop string
            k = len(body)
            while k > 1 and cut_at_stop(decode(body[: k - 1], skip_special_tokens=True), stops)[1]:
                k -= 1
            count, reason = k, "stop"
        return Generation(text=text, num_tokens=count, finish_reason=reason)

    # ------------------------------------------------------------------ protocol

    @torch.inference_mode()
    def generate(
        self, conversations: list[Conversation], params: SamplingParams
    ) -> list[list[Generation]]:
        prompts = self.encode(conversations)
        jobs = [i for i in range(len(conversations)) for _ in range(params.n)]
        order = sorted(range(len(jobs)), key=lambda j: -len(prompts[jobs[j]]))
        results: list[Generation | None] = [None] * len(jobs)
        progress.begin(len(jobs))
        for b, chunk in enumerate(_batches(order, self.batch_size)):
            batch = [prompts[jobs[j]] for j in chunk]
            if self.engine == "cai":
                rows = self._decode(batch, [j % params.n for j in chunk], params)
            else:
                rows = self._hf_generate(batch, params, b)
            for row, j in zip(rows, chunk):
                results[j] = self._finish(row, params.stop)
            progress.advance(len(chunk))
        grouped: list[list[Generation]] = [[] for _ in conversations]
        for j, i in enumerate(jobs):
            grouped[i].append(results[j])  # type: ignore[arg-type]
        return grouped

    def _decode(self, batch: list[list[int]], samples: list[int], params: SamplingParams):
        seeds = [row_seed(params.seed or 0, k, p) for k, p in zip(samples, batch)]
        check = None
        if params.stop:
            width = max(len(s) for s in params.stop) + 1
            decode = self.tokenizer.decode

            def check(tokens: list[int]) -> bool:
                return cut_at_stop(decode(tokens[-width:], skip_special_tokens=True), params.stop)[
                    1
                ]

        return [r.tokens for r in self.decoder.decode(batch, params, seeds, check)]

    def _hf_generate(self, batch: list[list[int]], params: SamplingParams, b: int):
        """The reference path: transformers' own ``generate`` (engine="hf")."""
        ids, mask = self._left_pad(batch)
        if params.seed is not None:
            torch.manual_seed(params.seed + b)
        sample = params.temperature > 0
        processors = LogitsProcessorList()
        if params.repetition_penalty != 1.0:  # ours: the answer's tokens only
            processors.append(AnswerRepetitionPenalty(params.repetition_penalty, ids.shape[1]))
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=params.max_new_tokens,
            do_sample=sample,
            temperature=params.temperature if sample else None,
            top_p=params.top_p if sample else None,
            min_p=params.min_p if sample and params.min_p > 0 else None,
            top_k=None,
            repetition_penalty=1.0,  # never transformers' own: it counts the prompt
            logits_processor=processors,
            stop_strings=list(params.stop) or None,
            tokenizer=self.tokenizer if params.stop else None,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids),
            streamer=_TokenCounter(self.pad_id) if progress.listening_now() else None,
        )
        return out[:, ids.shape[1] :].tolist()

    def option_token_ids(self, context: list[int], text: str, option: str) -> list[int]:
        """The option's tokens as they follow ``context`` (whose text is ``text``)."""
        return option_token_ids(self.tokenizer, context, text, option)

    @torch.inference_mode()
    def score_options(
        self, conversations: list[Conversation], options: Options
    ) -> list[list[float]]:
        each = options_for_each(conversations, options)
        texts = [self.render(c) for c in conversations]
        contexts = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        seqs: list[tuple[int, int, list[int], int]] = []
        for ci, (ctx, text) in enumerate(zip(contexts, texts)):
            for oi, option in enumerate(each[ci]):
                cont = self.option_token_ids(ctx, text, option)
                seqs.append((ci, oi, ctx + cont, len(cont)))
        scores = [[0.0] * len(opts) for opts in each]
        order = sorted(range(len(seqs)), key=lambda s: -len(seqs[s][2]))
        progress.begin(len(seqs))
        for chunk in _batches(order, self.batch_size):
            ids, mask = self._left_pad([seqs[s][2] for s in chunk])
            keep = max(seqs[s][3] for s in chunk) + 1
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(
                input_ids=ids, attention_mask=mask, position_ids=position_ids, logits_to_keep=keep
            ).logits.float()
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)  # predicts the last keep-1 tokens
            targets = ids[:, -(keep - 1) :]
            token_lp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            for row, s in enumerate(chunk):
                ci, oi, _, n = seqs[s]
                scores[ci][oi] = float(token_lp[row, -n:].sum())
            progress.advance(len(chunk))
        return scores
