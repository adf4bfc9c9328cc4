"""What every route needs, built once per app: settings, database sessions, the served portfolio, metrics."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy.orm import sessionmaker

from service.errors import APIError
from service.metrics import Metrics
from service.paths import public
from service.portfolio_state import PortfolioState, Served
from service.settings import Settings


@dataclass
class AppContext:
    """Shared state of one API process."""

    settings: Settings
    factory: sessionmaker
    portfolio: PortfolioState
    metrics: Metrics
    pool: ThreadPoolExecutor
    decode_pool: ThreadPoolExecutor

    @functools.cached_property
    def _fixed_paths(self) -> tuple[Path, Path]:
        """The data root and the configured portfolio directory, resolved once."""
        return self.settings.root, self.settings.resolved_portfolio_dir().resolve()

    def public(self, value: Any) -> Any:
        """``value`` as a client may see it: server paths relative to the data root (see ``service.paths``)."""
        root, configured = self._fixed_paths
        served = self.portfolio.served
        others = (configured,) if served is None else (configured, served.portfolio.directory)
        return public(value, root, others)

    def served(self) -> Served:
        """The served portfolio, or 503 while none is loaded."""
        served = self.portfolio.served
        if served is None:
            raise APIError(503, "not_ready", "no portfolio is loaded yet",
                           {"last_error": self.portfolio.last_error})
        return served


def get_ctx(request: Request) -> AppContext:
    """FastAPI dependency: the app's context."""
    return request.app.state.ctx
