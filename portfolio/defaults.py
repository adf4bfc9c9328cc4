"""Where the portfolio served by default lives: ``$METAREC_PORTFOLIO_DIR`` or the shipped demo portfolio."""

from __future__ import annotations

import os
from pathlib import Path

PORTFOLIO_DIR_ENV = "METAREC_PORTFOLIO_DIR"


def default_portfolio_dir() -> Path:
    """``$METAREC_PORTFOLIO_DIR`` if set, else ``<repo>/portfolios/demo``."""
    env = os.environ.get(PORTFOLIO_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "portfolios" / "demo"
