"""Constitutions: the YAML schema, validation, sampling, hashing and importers.

A constitution is data (see ``docs/constitutions.md``): principles with a critique
request, a revision request and an optional comparison question for the judge."""

from __future__ import annotations

from cai.constitution.importers import import_files, to_yaml
from cai.constitution.schema import (
    Constitution,
    Example,
    Message,
    Principle,
    comparison_question,
    load_constitution,
    parse_constitution,
    resolve_constitution_path,
    row_rng,
    sample_principle,
    shipped_constitutions,
)

__all__ = [
    "Constitution",
    "Example",
    "Message",
    "Principle",
    "comparison_question",
    "import_files",
    "load_constitution",
    "parse_constitution",
    "resolve_constitution_path",
    "row_rng",
    "sample_principle",
    "shipped_constitutions",
    "to_yaml",
]
