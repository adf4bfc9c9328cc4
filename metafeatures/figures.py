"""Shared figure plumbing: a headless matplotlib axes and an atomic PNG save."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def new_axes(title: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    """A 6x4 in figure on the non-interactive Agg backend, with labels, grid and a small title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return fig, ax


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write the PNG (creating its folder) and free the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial.png")
    fig.savefig(tmp)
    tmp.replace(path)
    plt.close(fig)
    return path
