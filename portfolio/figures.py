"""Portfolio figures: the performance matrix as an annotated heatmap and the reduced-portfolio curve (Fig. 6)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from metafeatures.figures import new_axes, save_figure
from portfolio.selection import PerformanceMatrix, PortfolioStep


def plot_performance_matrix(P: PerformanceMatrix, path: str | Path) -> Path:
    """Heatmap of incumbent configs (rows) × datasets (columns) with each score written in its cell."""
    n_configs, n_datasets = P.shape
    fig, ax = new_axes(f"performance matrix: {n_configs} incumbents × {n_datasets} datasets ('fail' = failed run)",
                       "evaluated on dataset", "incumbent configuration of")
    fig.set_size_inches(max(6.0, 1.0 + 0.7 * n_datasets), max(4.0, 1.5 + 0.45 * n_configs))
    ax.grid(False)
    scores = P.scores
    finite = scores[~np.isnan(scores)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    image = ax.imshow(np.ma.masked_invalid(scores), cmap="viridis", vmin=lo, vmax=hi, aspect="auto")
    fig.colorbar(image, ax=ax, label="score")
    ax.set_xticks(range(n_datasets), labels=list(P.datasets), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n_configs), labels=list(P.configs), fontsize=8)
    fontsize = 8 if max(n_configs, n_datasets) <= 12 else 6
    for i in range(n_configs):
        for j in range(n_datasets):
            value = scores[i, j]
            if np.isnan(value):
                text, colour = "fail", "black"
            else:
                text = f"{value:.2f}"
                colour = "white" if (value - lo) / (hi - lo) < 0.6 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=colour)
    return save_figure(fig, Path(path))


def plot_portfolio_curve(steps: Sequence[PortfolioStep], path: str | Path) -> Path:
    """Min, mean and 0.5·(min+mean) of the greedy reduced portfolio against its size m (seed 001 Fig. 6)."""
    if not steps:
        raise ValueError("no portfolio steps to plot")
    sizes = [s.size for s in steps]
    fig, ax = new_axes("reduced portfolio: performance across datasets by portfolio size",
                       "portfolio size m", "score of the best member per dataset")
    ax.plot(sizes, [s.mean for s in steps], "o-", color="tab:blue", label="mean")
    ax.plot(sizes, [s.min for s in steps], "s-", color="tab:red", label="min")
    ax.plot(sizes, [s.score for s in steps], "^-", color="tab:green", label="0.5·(min + mean)")
    for step in steps:
        ax.annotate(f"+{step.added}", (step.size, step.score), textcoords="offset points", xytext=(3, 5),
                    fontsize=6, rotation=30)
    ax.set_xticks(sizes)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, Path(path))
