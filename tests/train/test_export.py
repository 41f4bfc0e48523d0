"""`cai export`: a LoRA adapter trained by `cai train sft --lora`, merged into the base."""

from __future__ import annotations

from tests.train.conftest import base_weights, changed, weights


def test_lora_trains_an_adapter_and_export_merges_it(cai, data, tmp_path):
    out = tmp_path / "lora"
    r = cai(
        "train",
        "sft",
        "--model",
        "tiny-random",
        "--dataset",
        data.sft,
        "-o",
        out,
        "--lora",
        "--lora-r",
        "4",
        "--max-steps",
        "3",
        "--learning-rate",
        "1e-2",
    )
    assert r.code == 0, r.err
    assert (out / "adapter_config.json").is_file()
    merged = tmp_path / "merged"
    r = cai("export", out, "--merge-lora", "-o", merged)
    assert r.code == 0, r.err
    after = weights(merged)
    assert not any("lora" in k for k in after) and changed(base_weights(), after)
