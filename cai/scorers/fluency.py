"""Fluency: the mean per-token negative log-likelihood of an answer under a reference model.

Each completion is scored as the assistant's answer to the prompt alone (the last user
message, in the reference model's chat template, with no system prompt and no worked
examples), under a **fixed reference model in fp32 with plain decoding**: raw logits, no
temperature, no penalty. The default reference is SmolLM2-135M-Instruct, whatever model
wrote the text, so figures compare across settings and a looping or low-temperature
generator cannot grade itself.

Fluent English answers score about 1-3 nats per token under SmolLM2; word salad scores
above 4 (``cai.quality`` flags it at ``SALAD_NLL``). An empty answer has no tokens and
scores ``nan``. Answers are scored on at most ``max_tokens`` tokens (the first ones).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from cai.models import DEFAULT_MODEL
from cai.scorers.base import completion_texts, prompt_texts

REFERENCE = DEFAULT_MODEL
"""The default reference model: SmolLM2-135M-Instruct, packaged."""


@lru_cache(maxsize=2)
def _load(reference: str):
    """The reference model in fp32 (on the GPU if there is one), loaded once per process."""
    import torch

    from cai.models import load_causal_lm

    model, tok = load_causal_lm(reference)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device=device, dtype=torch.float32).eval(), tok


class FluencyScorer:
    """Mean per-token NLL (nats) of each completion as an answer to its prompt; lower is
    more fluent. ``nan`` for an empty completion."""

    name = "fluency_nll"
    higher_is_better = False
    __name__ = "fluency_nll"

    def __init__(self, reference: str = REFERENCE, batch_size: int = 16, max_tokens: int = 384):
        self.reference = reference
        self.description = f"fluency (mean token NLL under {reference}, fp32)"
        self.batch_size = max(1, batch_size)
        self.max_tokens = max_tokens
        self.model, self.tokenizer = _load(reference)

    def _sequence(self, prompt: str, answer: str) -> tuple[list[int], int]:
        """The prompt-and-answer tokens and how many of them are the answer's."""
        tok = self.tokenizer
        context = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ctx_ids = tok(context, add_special_tokens=False)["input_ids"]
        full = tok(context + answer, add_special_tokens=False)["input_ids"]
        if full[: len(ctx_ids)] == ctx_ids:
            ans = full[len(ctx_ids) :]
        else:
            ans = tok(answer, add_special_tokens=False)["input_ids"]
        ans = ans[: self.max_tokens]
        return ctx_ids + ans, len(ans)

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float]:
        import torch

        seqs = [
            self._sequence(p, c)
            for p, c in zip(prompt_texts(prompts), completion_texts(completions))
        ]
        out = [math.nan] * len(seqs)
        order = sorted((i for i, s in enumerate(seqs) if s[1] > 0), key=lambda i: -len(seqs[i][0]))
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                width = max(len(seqs[i][0]) for i in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for r, i in enumerate(chunk):
                    s = seqs[i][0]
                    ids[r, width - len(s) :] = torch.tensor(s)
                    mask[r, width - len(s) :] = 1
                keep = max(seqs[i][1] for i in chunk) + 1
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                dev = self.model.device
                ids, mask, positions = ids.to(dev), mask.to(dev), positions.to(dev)
                logits = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep
                ).logits.float()
                logp = torch.log_softmax(logits[:, :-1], dim=-1)
                token_lp = logp.gather(-1, ids[:, -(keep - 1) :].unsqueeze(-1)).squeeze(-1)
                for r, i in enumerate(chunk):
                    n = seqs[i][1]
                    out[i] = float(-token_lp[r, -n:].mean())
        return out
