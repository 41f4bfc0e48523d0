"""Figures for reports: Agg-backed (no pyplot global state) and saved atomically."""

from __future__ import annotations

from pathlib import Path

from cai._util.files import atomic_file
from cai.errors import CaiError


def new_figure(figsize: tuple[float, float]):
    """A matplotlib ``Figure`` with an Agg canvas attached."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CaiError("plots need matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG, atomically."""
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
    return Path(path)
