"""Plots as files: matplotlib on the Agg backend (no display needed), written atomically."""
from __future__ import annotations

from pathlib import Path

from edgecnn.core.files import atomic_path


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display), or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically (a reader never sees half a file) and close it."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    pyplot().close(fig)
    return Path(path)
