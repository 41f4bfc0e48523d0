"""Shared-prefix ("cascade") attention for batched decoding on CPU.

When every row of a batch begins with the same prefix (the system prompt and few-shot
block of a CAI stage), each row's attention splits into two parts that are combined with
their log-sum-exps:

- the **prefix part**: every query of every row against the one copy of the prefix's
  keys and values, in a single kernel call, so the prefix is read once per step instead
  of once per row;
- the **row part**: each row's queries against its own tokens (its prompt suffix and
  what it generated so far), with the usual causal and padding mask.

The prefix cache is never copied into the rows. ``active_prefix`` tells the attention
function which prefix is in force; outside it (option scoring, prefix prefill), the
model's attention is plain SDPA.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

NAME = "cai_prefix_sdpa"
_state = threading.local()


@contextmanager
def active_prefix(kv: list[tuple[torch.Tensor, torch.Tensor]] | None) -> Iterator[None]:
    """Within the block, layer i also attends to ``kv[i]`` (shape ``[1, heads, P, dim]``)."""
    previous = getattr(_state, "kv", None)
    _state.kv = kv
    try:
        yield
    finally:
        _state.kv = previous


def _flash(q, k, v, mask, scale):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, False, attn_mask=mask, scale=scale
    )


def prefix_attention(
    module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs
):
    """An ``AttentionInterface`` function: SDPA, plus the active shared prefix if any."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    kv = getattr(_state, "kv", None)
    if kv is None or query.device.type != "cpu":
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    b, h, lq, d = query.shape
    hk = key.shape[1]
    g = h // hk
    pk, pv = kv[module.layer_idx]
    scale = scaling if scaling is not None else d**-0.5
    # Row part: pack the query heads that share a key head, so keys are not repeated.
    q_rows = query.reshape(b, hk, g * lq, d)
    if attention_mask is None:
        lk = key.shape[2]
        keep = torch.ones(lq, lk, dtype=torch.bool, device=query.device).tril(lk - lq)
        attention_mask = keep[None, None]
    if attention_mask.dtype == torch.bool:
        bias = torch.zeros(attention_mask.shape, dtype=query.dtype, device=query.device)
        bias.masked_fill_(~attention_mask, float("-inf"))
    else:
        bias = attention_mask.to(query.dtype)
    bias = bias.expand(b, 1, lq, key.shape[2]).repeat(1, 1, g, 1)
    o_rows, lse_rows = _flash(q_rows, key, value, bias, scale)
    # Prefix part: every query of every row against the single copy of the prefix.
    q_prefix = query.reshape(b, hk, g * lq, d).transpose(0, 1).reshape(1, hk, b * g * lq, d)
    o_pre, lse_pre = _flash(q_prefix, pk, pv, None, scale)
    o_pre = o_pre.reshape(hk, b, g * lq, d).transpose(0, 1)
    lse_pre = lse_pre.reshape(hk, b, g * lq).transpose(0, 1)
    # Combine the two softmax parts by their log-sum-exps.
    m = torch.maximum(lse_rows, lse_pre)
    w_rows, w_pre = torch.exp(lse_rows - m), torch.exp(lse_pre - m)
    out = (o_rows * w_rows[..., None] + o_pre * w_pre[..., None]) / (w_rows + w_pre)[..., None]
    out = out.reshape(b, h, lq, d).transpose(1, 2).contiguous()
    return out, None


def install(model) -> bool:
    """Switch a model that uses SDPA to the prefix-aware attention; say if it was done."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(NAME, prefix_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return True
