"""The portfolio the API serves, swapped atomically on reload; the active directory is shared via the database.

``POST /v1/portfolio/reload`` and a finished rebuild job both *publish* a directory (a row in ``meta``);
every API process notices the change, loads and validates the new portfolio, and only then swaps it in.
A directory that fails to load is refused and the previous portfolio keeps serving.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from portfolio.artifact import LoadedPortfolio, load_portfolio
from portfolio.fingerprinting import fingerprinter_for
from portfolio.recommender import Recommender
from service.batcher import FingerprintBatcher
from service.db import MetaRow

log = logging.getLogger("metarec.service")
ACTIVE_KEY = "active_portfolio_dir"


@dataclass(frozen=True)
class Served:
    """Everything needed to answer a recommendation under one portfolio version."""

    portfolio: LoadedPortfolio
    recommenders: dict[str, Recommender]
    batcher: FingerprintBatcher


def published_portfolio(factory: sessionmaker, root: Path) -> Path | None:
    """The directory most recently published through the database, if any (a relative one is under ``root``:
    API processes on several hosts may mount the shared data root at different paths)."""
    with factory() as session:
        row = session.get(MetaRow, ACTIVE_KEY)
        return None if row is None else root / row.value


def publish_portfolio(factory: sessionmaker, directory: Path, root: Path) -> None:
    """Make ``directory`` the portfolio every API process should serve (stored relative to the data root when
    it lies inside it)."""
    resolved = directory.resolve()
    value = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)
    with factory.begin() as session:
        row = session.get(MetaRow, ACTIVE_KEY)
        if row is None:
            session.add(MetaRow(key=ACTIVE_KEY, value=value))
        else:
            row.value = value


class PortfolioState:
    """Holds the served portfolio; ``load`` validates a directory completely before swapping."""

    def __init__(self, threads: int, max_images: int) -> None:
        self.threads = threads
        self.max_images = max_images
        self._lock = threading.Lock()
        self._served: Served | None = None
        self.last_error: str | None = None
        self._refused: str | None = None

    @property
    def served(self) -> Served | None:
        """The current portfolio bundle (None until the first successful load)."""
        return self._served

    def load(self, directory: Path) -> Served:
        """Load, validate and swap in ``directory``; on any error raise and keep the old one."""
        with self._lock:
            loaded = load_portfolio(directory)
            old = self._served
            same = old is not None and old.portfolio.directory == loaded.directory
            if old is not None and same and old.portfolio.version == loaded.version:
                return old
            recommenders = {name: Recommender(loaded, name) for name in sorted(loaded.matchers)}
            if old is not None and old.portfolio.fingerprint_spec == loaded.fingerprint_spec:
                batcher = old.batcher
            else:
                batcher = FingerprintBatcher(fingerprinter_for(loaded, threads=self.threads,
                                                               how_to_pass="set the portfolio's weights file"),
                                             self.max_images)
            self._served = Served(loaded, recommenders, batcher)
            if old is not None and old.batcher is not batcher:
                old.batcher.close()
            log.info("serving portfolio %s from %s", loaded.version, loaded.directory)
            return self._served

    def sync(self, factory: sessionmaker, root: Path) -> None:
        """Follow the directory published in the database; a bad one is logged and refused."""
        path = published_portfolio(factory, root)
        current = self._served
        published = None if path is None else str(path.resolve())
        if path is None or published == self._refused:
            return
        if current is not None and str(current.portfolio.directory.resolve()) == published:
            return
        try:
            self.load(path)
            self.last_error = None
        except Exception as exc:
            self._refused = published
            self.last_error = f"published portfolio {published} refused: {exc}"
            log.error(self.last_error)
