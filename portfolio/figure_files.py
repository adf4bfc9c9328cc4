"""The figures a portfolio directory may hold, by file name, and which of them a given directory has.

The names are the only files the API serves from a portfolio directory (``GET /v1/portfolio/figures/{name}``)
and the ones ``metarec portfolio show`` lists. Kept free of heavy imports: the API and the CLI's ``--help``
read it. ``tests/test_web.py`` checks the names against the writers (``portfolio.artifact`` and
``offline_search.rebuild``).
"""

from __future__ import annotations

from pathlib import Path

#: file name → what the figure shows (the title the web page gives it), in display order
FIGURES: dict[str, str] = {
    "performance_matrix.png": "Performance matrix: each known dataset's incumbent configuration scored on every "
                              "known dataset (ALC)",
    "portfolio_curve.png": "Reduced portfolio: score against portfolio size (greedy)",
    "batch_size_curve.png": "Matcher identification accuracy against the number of images per request",
}


def portfolio_figures(directory: str | Path) -> dict[str, Path]:
    """The known figures present in ``directory`` as regular files (a symbolic link is never listed), in order."""
    directory = Path(directory)
    found: dict[str, Path] = {}
    for name in FIGURES:
        path = directory / name
        if not path.is_symlink() and path.is_file():
            found[name] = path
    return found
