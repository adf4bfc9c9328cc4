"""Where the portfolio served by default lives: ``$METAREC_PORTFOLIO_DIR`` or the shipped demo portfolio."""

from __future__ import annotations

import os
from pathlib import Path

PORTFOLIO_DIR_ENV = "METAREC_PORTFOLIO_DIR"


def default_portfolio_dir() -> Path:
    """``$METAREC_PORTFOLIO_DIR`` if set, else the shipped ``portfolios/demo`` (package data, so a non-editable
    install finds it in site-packages and a checkout finds it in the repository)."""
    env = os.environ.get(PORTFOLIO_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import portfolios  # the package that carries the shipped portfolios as data

    base = portfolios.__file__ and Path(portfolios.__file__).parent  # None if an old editable install sees a
    return (base or Path(next(iter(portfolios.__path__)))) / "demo"  # namespace package: its directory then
