"""How far a rebuild is, in work units, for progress bars and the service's job progress.

A matrix cell is one unit (one fine-tune at the full budget); a BOHB search weighs what its iterations
evaluate in full-budget fine-tunes (hpbandster's schedule, :func:`offline_search.hpb.bohb_cost`), so the
fraction follows the work, not the number of stages. Done items are kept as sets: reading a stored cell
back a second time does not count twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RebuildProgress:
    """Searches and cells, total and done; :meth:`fraction` is the share of the work units done."""

    search_weight: float = 1.0
    searches_total: int = 0
    cells_total: int = 0
    searches_done: set[str] = field(default_factory=set)
    cells_done: set[tuple[Any, ...]] = field(default_factory=set)

    def fraction(self) -> float:
        """Done units / all units, in [0, 1] (0 before anything is planned)."""
        total = self.searches_total * self.search_weight + self.cells_total
        done = len(self.searches_done) * self.search_weight + len(self.cells_done)
        return 0.0 if total <= 0 else min(1.0, done / total)

    def to_dict(self) -> dict[str, Any]:
        """Counts and the fraction, as JSON (a job's progress details)."""
        return {"searches_done": len(self.searches_done), "searches_total": self.searches_total,
                "cells_done": len(self.cells_done), "cells_total": self.cells_total,
                "search_weight": round(self.search_weight, 3), "fraction": round(self.fraction(), 4)}


__all__ = ["RebuildProgress"]
