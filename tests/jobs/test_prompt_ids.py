"""One id scheme for prompts: evaluate's two input paths give a prompt the same id."""

from __future__ import annotations

import json
from pathlib import Path

from cai.config import EvalConfig
from cai.data import content_id, to_conversation
from cai.evaluate.run import generate_responses, load_prompt_sets, prompt_id, read_responses
from tests.fakes import ScriptedBackend

PROMPTS = [
    {"id": None, "prompt": "How do I bake bread?"},
    {"id": 7, "prompt": "Grüße, wie geht's?"},
    {"id": None, "prompt": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Name a colour."}]},
]  # fmt: skip


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return str(path)


def test_a_prompt_gets_one_id_whether_answered_or_read(tmp_path):
    prompts = _jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    cfg = EvalConfig(models=["scripted-model"], prompts=[prompts], output=tmp_path / "ev")
    generated = generate_responses(
        cfg, "scripted-model", load_prompt_sets(cfg), ScriptedBackend(answer="ok")
    )
    # a responses table holds one prompt type per column: here every prompt as messages
    answers = [{**p, "prompt": to_conversation(p["prompt"], "prompt"), "response": "ok",
                "model": "m"} for p in PROMPTS for _ in range(2)]  # fmt: skip
    read = read_responses(EvalConfig(responses=_jsonl(tmp_path / "answers.jsonl", answers)))

    ids = [r["prompt_id"] for r in generated]
    assert ids == [r["prompt_id"] for r in read[::2]] == [r["prompt_id"] for r in read[1::2]]
    assert ids[1] == "7"  # a given id, as text on both paths
    assert ids[0] == content_id([{"role": "user", "content": "How do I bake bread?"}])
    assert ids[2].startswith("p-") and len(ids[2]) == 14
    assert [r["sample"] for r in read[:2]] == [0, 1]  # two answers to one prompt


def test_prompt_id_uses_the_rows_id_unless_it_is_blank():
    conv = [{"role": "user", "content": "hi"}]
    assert prompt_id({"id": 3}, conv) == "3"
    assert prompt_id({"id": "  "}, conv) == prompt_id({}, conv) == content_id(conv)
