"""Datasets in and out: read prompts from any format, write Hub-ready dataset folders."""

from __future__ import annotations

from cai.data.messages import BadRow, as_messages, parse_hh, response_text, to_conversation
from cai.data.read import (
    PromptRow,
    Reject,
    content_id,
    read_prompts,
    read_table,
    shipped_prompt_set_path,
    split_over_budget,
    write_rejects,
)
from cai.data.write import DatasetCard, markdown_table, push_to_hub, split_rows, write_dataset

__all__ = [
    "BadRow",
    "DatasetCard",
    "PromptRow",
    "Reject",
    "as_messages",
    "content_id",
    "markdown_table",
    "parse_hh",
    "push_to_hub",
    "read_prompts",
    "read_table",
    "response_text",
    "shipped_prompt_set_path",
    "split_over_budget",
    "split_rows",
    "to_conversation",
    "write_dataset",
    "write_rejects",
]
