"""Does a performance matrix leave room for selection? The gap between the per-dataset oracle and the
single best candidate, before any recommender is trusted to close it.

A matrix where one candidate is best (or nearly) on every dataset can show nothing: the single best is
already the oracle. Issue 12 asks for a mean ALC gap oracle − single best ≥ 0.05 and a normalised regret
of the single best ≥ 0.15 before a build is evaluated. The same numbers are read from a finished
portfolio or from an observation store while a build is still writing it (complete columns only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metafeatures.errors import MetarecError
from portfolio.selection import FAILED_SCORE
from portfolio.store import ObservationStore, performance_view

#: the issue's bars for a matrix worth evaluating on
GAP_GOAL = 0.05
REGRET_GOAL = 0.15


@dataclass(frozen=True)
class Room:
    """Oracle − single best on the complete columns of one matrix."""

    n_candidates: int
    n_datasets: int
    n_incomplete: int
    single_best: str
    oracle_mean: float
    single_best_mean: float
    gap: float
    single_best_regret: float
    wins: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, with the goals and whether they are met."""
        return {"n_candidates": self.n_candidates, "n_datasets": self.n_datasets,
                "n_incomplete_datasets": self.n_incomplete, "single_best": self.single_best,
                "oracle_mean": round(self.oracle_mean, 4), "single_best_mean": round(self.single_best_mean, 4),
                "gap": round(self.gap, 4), "single_best_regret": round(self.single_best_regret, 4),
                "wins": dict(sorted(self.wins.items(), key=lambda kv: -kv[1])),
                "goals": {"gap": GAP_GOAL, "single_best_regret": REGRET_GOAL,
                          "met": bool(self.gap >= GAP_GOAL and self.single_best_regret >= REGRET_GOAL)}}


def matrix_room(scores: np.ndarray, candidates: Sequence[str], datasets: Sequence[str]) -> Room:
    """Room of a candidates × datasets score matrix; columns with a missing cell (NaN) are left out, so a
    failed run must come filled (with FAILED_SCORE, as the evaluation scores it). Normalised regret per dataset is
    (best − single best) / (best − worst), 0 where every candidate scores alike."""
    s = np.asarray(scores, dtype=float)
    if s.shape != (len(candidates), len(datasets)):
        raise ValueError(f"scores have shape {s.shape}, expected {(len(candidates), len(datasets))}")
    complete = ~np.isnan(s).any(axis=0)
    m = s[:, complete]
    if m.shape[1] == 0:
        raise MetarecError("no dataset has a score for every candidate yet")
    means = m.mean(axis=1)
    sb = int(np.argmax(means))
    best, worst = m.max(axis=0), m.min(axis=0)
    spread = best - worst
    regret = np.where(spread > 1e-12, (best - m[sb]) / np.where(spread > 1e-12, spread, 1.0), 0.0)
    winners = np.argmax(m, axis=0)
    wins: dict[str, int] = {}
    for w in winners:
        wins[candidates[int(w)]] = wins.get(candidates[int(w)], 0) + 1
    return Room(n_candidates=len(candidates), n_datasets=int(complete.sum()), n_incomplete=int((~complete).sum()),
                single_best=candidates[sb], oracle_mean=float(best.mean()), single_best_mean=float(means[sb]),
                gap=float(best.mean() - means[sb]), single_best_regret=float(regret.mean()), wins=wins)


def store_room(store: ObservationStore, budget: float, budget_kind: str, time_budget: float, t0: float,
               source: str = "matrix") -> Room:
    """Room of the matrix a build is writing: candidates are the configurations with ``source`` rows at
    ``budget``, datasets every dataset they ran on; only complete columns count."""
    rows = [o for o in store.observations(source=source)
            if o.budget == float(budget) and o.budget_kind == budget_kind]
    if not rows:
        raise MetarecError(f"{store.path}: no {source} rows at budget {budget:g} {budget_kind}")
    candidates = sorted({o.config_id for o in rows})
    datasets = {o.dataset: o.dataset_hash for o in sorted(rows, key=lambda o: o.dataset)}
    view = performance_view(store, candidates, datasets, budget, budget_kind, time_budget, t0)
    scores = np.where(np.isnan(view.scores), FAILED_SCORE, view.scores)  # failed runs, as the evaluation has them
    for cid, name in view.missing:
        scores[candidates.index(cid), view.datasets.index(name)] = np.nan
    return matrix_room(scores, candidates, list(view.datasets))


__all__ = ["GAP_GOAL", "REGRET_GOAL", "Room", "matrix_room", "store_room"]
