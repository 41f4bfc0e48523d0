"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option

PromptsDir = Annotated[
    Path | None,
    typer.Option(
        "--prompts-dir", help="A folder whose *.j2 files override shipped templates by name."
    ),
]
