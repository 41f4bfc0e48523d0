"""``cai export --merge-lora``: fold a LoRA adapter into its base model's weights."""

from __future__ import annotations

import json
from pathlib import Path

from cai.errors import CaiError


def merge_lora(adapter: Path, output: Path, base: str | None = None) -> Path:
    """Merge the adapter in ``adapter`` into its base (from adapter_config.json, or ``base``)
    and save a plain model with the tokenizer to ``output``."""
    config = adapter / "adapter_config.json"
    if not config.is_file():
        raise CaiError(f"{adapter} has no adapter_config.json; is it a LoRA output of cai train?")
    try:
        from peft import PeftModel
    except ImportError:
        raise CaiError("merging LoRA needs peft: pip install peft") from None
    from cai.models import load_causal_lm, load_tokenizer

    base_name = base or json.loads(config.read_text())["base_model_name_or_path"]
    model, _ = load_causal_lm(base_name, need_template=False)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    output.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(output))
    load_tokenizer(str(adapter)).save_pretrained(str(output))
    return output
