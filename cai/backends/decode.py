"""A batched decode loop for causal LMs, faster than ``generate`` for CAI's workload.

What it does differently from ``model.generate``:

- **Shared prefix.** The longest common token prefix of a batch (the system prompt and
  few-shot block every row carries) is prefilled once, at batch size 1, kept for the next
  calls, and written into every row's cache. Rows are laid out as
  ``[prefix][left padding][row's own tokens][generated]`` with positions that skip the
  padding, so each row sees exactly what it would see alone.
- **No cache copying.** Keys and values live in buffers allocated once per batch; each
  step writes one column and attention reads a view. ``generate``'s dynamic cache
  concatenates, copying the whole cache at every step.
- **Only the last logits.** The LM head runs on one position per row, never the prompt.
- **Per-row seeds.** Each row samples from its own random stream, seeded from the run's
  seed and the row's tokens, so a row's text does not depend on which rows share its
  batch. Sampling is an inverse-CDF draw, not ``torch.multinomial``.
- **Finished rows leave the batch** once a quarter of it is done.

Sampling follows ``SamplingParams``: the repetition penalty counts the answer's own
tokens only (never the prompt's), then temperature, then the top-p and min-p filters.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from cai import progress
from cai.backends.base import SamplingParams
from cai.backends.prefix_attention import active_prefix, install

MIN_SHARED_PREFIX = 16


class _BufferLayer(DynamicLayer):
    """A cache layer over preallocated buffers: ``update`` writes in place, returns views."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()
        self.buf_k, self.buf_v = keys, values
        self.dtype, self.device = keys.dtype, keys.device
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        n, q = self.keys.shape[-2], key_states.shape[-2]
        self.buf_k[:, :, n : n + q] = key_states
        self.buf_v[:, :, n : n + q] = value_states
        self.keys, self.values = self.buf_k[:, :, : n + q], self.buf_v[:, :, : n + q]
        return self.keys, self.values

    def select(self, rows: torch.Tensor) -> None:
        n = self.keys.shape[-2]
        self.buf_k, self.buf_v = self.buf_k.index_select(0, rows), self.buf_v.index_select(0, rows)
        self.keys, self.values = self.buf_k[:, :, :n], self.buf_v[:, :, :n]


@dataclass
class RowResult:
    tokens: list[int]
    """Generated tokens, including the end-of-turn token if there was one."""
    stopped: bool
    """Ended on an end-of-turn token or a stop string (else: ran out of tokens)."""


def row_seed(seed: int, sample: int, prompt: Sequence[int]) -> int:
    """The random stream of one answer: fixed by the seed, the sample index and the prompt."""
    digest = hashlib.sha256(f"{seed}:{sample}:{','.join(map(str, prompt))}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def common_prefix_len(rows: Sequence[Sequence[int]]) -> int:
    first, n = rows[0], min(len(r) for r in rows)
    for i in range(n):
        if any(r[i] != first[i] for r in rows):
            return i
    return n


class Decoder:
    """Decodes batches for one model; remembers the last few shared prefixes' caches."""

    def __init__(self, model, pad_id: int, eos_ids: set[int], keep_prefixes: int = 4) -> None:
        self.model = model
        self.pad_id = pad_id
        self.eos = set(eos_ids)
        self.prefixes: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = (
            OrderedDict()
        )
        self.keep_prefixes = keep_prefixes
        self.min_shared_prefix = MIN_SHARED_PREFIX
        self.cascade = install(model)
        """Shared prefixes are attended from one copy (``cai.backends.prefix_attention``)."""
        """Shorter common prefixes are not shared; a huge value turns sharing off."""
        self.prefix_tokens_saved = 0

    def _prefix_cache(self, prefix: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if prefix in self.prefixes:
            self.prefixes.move_to_end(prefix)
            return self.prefixes[prefix]
        cache = DynamicCache()
        ids = torch.tensor([prefix], device=self.model.device)
        self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        self.prefixes[prefix] = kv
        while len(self.prefixes) > self.keep_prefixes:
            self.prefixes.popitem(last=False)
        return kv

    def _buffers(self, b: int, length: int, prefix_kv) -> list[_BufferLayer]:
        """Per-layer key/value buffers for ``b`` rows; rows start with ``prefix_kv`` if given."""
        cfg = self.model.config.get_text_config()
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        dev, dtype = self.model.device, self.model.dtype
        layers = []
        for i in range(cfg.num_hidden_layers):
            buf_k = torch.empty((b, heads, length, dim), dtype=dtype, device=dev)
            buf_v = torch.empty_like(buf_k)
            n = 0
            if prefix_kv is not None:
                k0, v0 = prefix_kv[i]
                n = k0.shape[2]
                buf_k[:, :, :n] = k0
                buf_v[:, :, :n] = v0
            layers.append(_BufferLayer(buf_k, buf_v, n))
        return layers

    @torch.inference_mode()
    def decode(
        self,
        prompts: list[list[int]],
        params: SamplingParams,
        seeds: list[int],
        stop_check=None,
    ) -> list[RowResult]:
        """Generate for every prompt; ``stop_check(tokens) -> bool`` tests stop strings."""
        dev = self.model.device
        b, max_new = len(prompts), params.max_new_tokens
        p = common_prefix_len(prompts) if b > 1 else 0
        p = min(p, min(len(x) for x in prompts) - 1)  # every row keeps >= 1 token of its own
        if p < self.min_shared_prefix:
            p = 0
        s = max(len(x) - p for x in prompts)
        prefix_kv = self._prefix_cache(tuple(prompts[0][:p])) if p else None
        if p:
            self.prefix_tokens_saved += p * (b - 1)
        # With cascade attention the rows' caches hold only their own tokens and the prefix
        # is attended from its single copy; otherwise the prefix is copied into every row.
        own = 0 if (p and self.cascade) else p
        cache = DynamicCache()
        cache.layers = self._buffers(b, own + s + max_new, prefix_kv if own else None)
        shared = prefix_kv if (p and self.cascade) else None

        ids = torch.full((b, s), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, own + s), dtype=torch.long)
        mask[:, :own] = 1
        for r, prompt in enumerate(prompts):
            mine = prompt[p:]
            ids[r, s - len(mine) :] = torch.tensor(mine, dtype=torch.long)
            mask[r, own + s - len(mine) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0) + (p - own)
        vocab = self.model.get_output_embeddings().weight.shape[0]
        seen = torch.zeros((b, vocab), dtype=torch.bool, device=dev)  # generated tokens only
        uniform = torch.stack(
            [torch.rand(max_new, generator=torch.Generator().manual_seed(sd)) for sd in seeds]
        ).to(dev)

        with active_prefix(shared):
            logits = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions[:, own:],
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1, :]
        rows = torch.arange(b, device=dev)  # which original row each batch slot holds
        last_pos = positions[:, -1]
        out: list[list[int]] = [[] for _ in range(b)]
        done = [False] * b
        stopped = [False] * b
        eos = self.eos
        for step in range(max_new):
            nxt = self._sample(logits.float(), seen, uniform[rows, step], params)
            live = 0
            for r, t in zip(rows.tolist(), nxt.tolist()):
                out[r].append(t)
                if done[r]:
                    continue
                live += 1
                if t in eos or (stop_check is not None and stop_check(out[r])):
                    done[r] = stopped[r] = True
            progress.add_tokens(live)  # tokens of the rows still going: the bar's tok/s
            if step == max_new - 1:
                break
            active = torch.tensor([not done[r] for r in rows.tolist()], device=dev)
            if not bool(active.any()):
                break
            if params.repetition_penalty != 1.0:
                seen[torch.arange(len(rows), device=dev), nxt] = True
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=mask.dtype, device=dev)], 1)
            last_pos = last_pos + 1
            if int(active.sum()) <= 0.75 * len(rows) and len(rows) > 2:
                keep = active.nonzero().squeeze(1)
                rows, nxt, mask, last_pos, seen = (
                    rows[keep],
                    nxt[keep],
                    mask[keep],
                    last_pos[keep],
                    seen[keep],
                )
                for layer in cache.layers:
                    layer.select(keep)
            with active_prefix(shared):
                logits = self.model(
                    input_ids=nxt[:, None],
                    attention_mask=mask,
                    position_ids=last_pos[:, None],
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                ).logits[:, -1, :]
        return [RowResult(out[r], stopped[r]) for r in range(b)]

    @staticmethod
    def _sample(logits, seen, u, params: SamplingParams) -> torch.Tensor:
        """One token per row: penalty, then temperature, then the min-p and top-p filters,
        then an inverse-CDF draw with the row's uniform ``u``. Greedy ignores the filters."""
        logits = penalize(logits, seen, params.repetition_penalty)
        if params.temperature <= 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits / params.temperature, dim=-1)
        probs = filter_probs(probs, params.top_p, params.min_p)
        cdf = probs.cumsum(-1)
        draw = (u * cdf[:, -1]).unsqueeze(1).contiguous()
        pick = torch.searchsorted(cdf, draw, right=True)  # never a zeroed token
        return pick.squeeze(1).clamp(max=probs.shape[1] - 1)


def penalize(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty on the ``seen`` tokens (a boolean mask like ``logits``):
    a positive logit is divided by ``penalty``, any other multiplied by it."""
    if penalty == 1.0:
        return logits
    hit = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, hit, logits)


def filter_probs(probs: torch.Tensor, top_p: float = 1.0, min_p: float = 0.0) -> torch.Tensor:
    """Zero the tokens that top-p or min-p drops (each row of ``probs`` a distribution).

    - top-p keeps the most likely tokens until their mass reaches ``top_p``;
    - min-p drops a token whose probability is below ``min_p`` times its row's largest.

    A token is kept if both keep it. Both are measured on ``probs`` as given, as
    transformers does (top-p first; min-p is a ratio to the top token, the same after
    top-p renormalises). The most likely token always stays. The result is not
    renormalised: a CDF draw scales by its total.
    """
    out = probs
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        out = out.scatter(1, order, torch.where(drop, 0.0, sorted_p))
    if min_p > 0.0:
        floor = min_p * probs.max(dim=-1, keepdim=True).values
        out = torch.where(probs < floor, 0.0, out)
    return out
