"""Constitutions: the YAML schema, validation, sampling, hashing and importers.

A constitution is data (see ``docs/constitutions.md``): principles with a critique
request, a revision request and an optional comparison question for the judge."""

from __future__ import annotations

from cai.constitution.importers import import_files, to_yaml
from cai.constitution.schema import (
    Constitution,
    Contrast,
    Example,
    Message,
    Principle,
    comparison_question,
    contrast_personas,
    load_constitution,
    parse_constitution,
    pointwise_question,
    resolve_constitution_path,
    row_rng,
    sample_principle,
    shipped_constitutions,
)

__all__ = [
    "Constitution",
    "Contrast",
    "Example",
    "Message",
    "Principle",
    "comparison_question",
    "contrast_personas",
    "import_files",
    "load_constitution",
    "parse_constitution",
    "pointwise_question",
    "resolve_constitution_path",
    "row_rng",
    "sample_principle",
    "shipped_constitutions",
    "to_yaml",
]
