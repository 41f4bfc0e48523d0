"""`cai.train.sft`: supervised fine-tuning on the revisions, mixed with helpful data."""

from __future__ import annotations

import json

from cai.train import config as tc
from tests.train.conftest import TRL, base_weights, cfg, changed, weights


def test_sft_learns_the_revisions_and_mixes_helpful_data(data, tmp_path):
    from cai.train.sft import train_sft

    out = tmp_path / "sft"
    s = train_sft(
        cfg(
            tc.SFTRunConfig,
            model="tiny-random",
            dataset=str(data.sft),
            output=out,
            mix=[f"{data.helpful}:0.5"],
            trl=TRL,
        )
    )
    assert s["steps"] == 12 and s["last_loss"] < s["first_loss"]
    assert s["data"]["sources"] == {str(data.sft): 8, str(data.helpful): 4}
    assert s["data"]["provenance"]["constitution"]["hash"] == "abc123"
    assert changed(base_weights(), weights(out))
    # The saved folder is a complete chat model with its card and summary.
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(out).chat_template
    saved = json.loads((out / "cai_train.json").read_text())
    assert saved["config"]["trl"]["max_steps"] == 12 and saved["kind"] == "sft"
    card = (out / "README.md").read_text()
    assert "abc123" in card and str(data.sft) in card
