"""The figure paths ``metarec portfolio show`` prints (heatmap, portfolio curve, batch-size curve).

Kept apart from :mod:`metarec.commands.portfolio` so the listing has one home; the API serves the same
files (``GET /v1/portfolio/figures/{name}``).
"""

from __future__ import annotations

from pathlib import Path


def figure_paths(directory: Path) -> dict[str, str]:
    """Figure file name → absolute path, for the figures the portfolio directory has."""
    from portfolio.figure_files import portfolio_figures

    return {name: str(path.resolve()) for name, path in portfolio_figures(directory).items()}


def figure_listing(directory: Path) -> str:
    """The lines ``portfolio show`` prints: one figure per line with what it shows, or why there are none."""
    from portfolio.figure_files import FIGURES

    paths = figure_paths(directory)
    if not paths:
        return "figures: none (the portfolio was saved without figures)"
    return "\n".join(["figures:", *(f"  {path}  ({FIGURES[name]})" for name, path in paths.items())])
