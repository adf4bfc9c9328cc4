"""Performance data: the candidates × datasets matrix plus each cell's learning curve, re-scored at any T.

A cell is one fine-tuning run of a candidate configuration on a known dataset. The matrix stores its ALC
at the portfolio's own time budget ``T`` (AutoDL: t0 = 60 s, T = 1200 s by default); the curve (t, NAUC)
lets the ALC be recomputed at a user's budget. Beyond the run's own length the last NAUC is held (that is
what the ALC's step function does anyway), and such a score is marked *extrapolated*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from finetune.metrics import alc
from metafeatures.errors import ArtifactError
from portfolio.selection import FAILED_SCORE, PerformanceMatrix

CURVES_FORMAT_VERSION = 1
DEFAULT_TIME_BUDGET = 1200.0
DEFAULT_T0 = 60.0
#: a stored matrix score and the ALC recomputed from its curve must agree this closely
SCORE_ATOL = 1e-6


@dataclass(frozen=True)
class CellCurve:
    """One run's anytime predictions: times (s since start), NAUC at each, and the run's wall budget."""

    t: tuple[float, ...]
    nauc: tuple[float, ...]
    budget_s: float

    def __post_init__(self) -> None:
        if len(self.t) != len(self.nauc):
            raise ValueError(f"a curve needs as many times as scores, got {len(self.t)} and {len(self.nauc)}")
        values = (*self.t, *self.nauc, self.budget_s)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise ValueError("curve times, scores and budget must be finite numbers")
        if any(t < 0 for t in self.t) or list(self.t) != sorted(self.t) or self.budget_s <= 0:
            raise ValueError("curve times must be non-negative and increasing, the budget positive")
        if any(not -1.0 <= s <= 1.0 for s in self.nauc):
            raise ValueError("NAUC values lie in [-1, 1]")

    def alc(self, time_budget: float, t0: float = DEFAULT_T0) -> float:
        """ALC of this curve at ``time_budget`` (points after it are ignored; the last one is held to it)."""
        return alc(self.t, self.nauc, time_budget, t0) if self.t else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"t": [round(v, 4) for v in self.t], "nauc": [round(v, 6) for v in self.nauc],
                "budget_s": self.budget_s}

    @classmethod
    def from_dict(cls, data: Any) -> CellCurve:
        """Rebuild from :meth:`to_dict`; ArtifactError if malformed."""
        if not isinstance(data, Mapping) or set(data) != {"t", "nauc", "budget_s"}:
            raise ArtifactError(f"curve: expected keys budget_s, nauc, t; got {data!r:.200}")
        try:
            return cls(t=tuple(data["t"]), nauc=tuple(data["nauc"]), budget_s=data["budget_s"])
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"curve: {exc}") from exc


@dataclass(frozen=True, eq=False)
class PerformanceData:
    """The matrix (ALC at the portfolio's T) and, when recorded, every cell's curve for other budgets."""

    matrix: PerformanceMatrix
    curves: Mapping[tuple[str, str], CellCurve] | None = None
    time_budget: float = DEFAULT_TIME_BUDGET
    t0: float = DEFAULT_T0

    @property
    def has_curves(self) -> bool:
        """True when every non-failed cell has a curve (so any budget can be scored)."""
        return self.curves is not None

    def scores_at(self, time_budget: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, extrapolated) at ``time_budget`` (None: the portfolio's own T), failed cells at FAILED_SCORE.

        ``extrapolated[i, j]`` is True when the budget is longer than the cell's run (its last score is held).
        """
        m = self.matrix
        base = m.filled()
        if time_budget is None or (self.curves is None and math.isclose(time_budget, self.time_budget)):
            return base, self._extrapolated(self.time_budget)
        if self.curves is None:
            raise ValueError("this portfolio stores no learning curves, so it can only score its own time budget "
                             f"T = {self.time_budget:g} s")
        out = np.array(base)
        for (config, dataset), curve in self.curves.items():
            i, j = m.config_index(config), m.dataset_index(dataset)
            if not math.isnan(m.scores[i, j]):
                out[i, j] = curve.alc(time_budget, self.t0)
        return out, self._extrapolated(time_budget)

    def _extrapolated(self, time_budget: float) -> np.ndarray:
        """Cells whose run was shorter than ``time_budget`` (all False when no curves are stored)."""
        flags = np.zeros(self.matrix.shape, dtype=bool)
        for (config, dataset), curve in (self.curves or {}).items():
            flags[self.matrix.config_index(config), self.matrix.dataset_index(dataset)] = time_budget > curve.budget_s
        return flags

    def max_run_s(self) -> float | None:
        """The longest stored run (the budget up to which no score is extrapolated), or None without curves."""
        return max((c.budget_s for c in self.curves.values()), default=None) if self.curves else None

    def curves_to_dict(self) -> dict[str, Any] | None:
        """``{"format_version", "time_budget", "t0", "cells": {config: {dataset: curve}}}`` or None."""
        if self.curves is None:
            return None
        cells: dict[str, dict[str, Any]] = {}
        for (config, dataset), curve in sorted(self.curves.items()):
            cells.setdefault(config, {})[dataset] = curve.to_dict()
        return {"format_version": CURVES_FORMAT_VERSION, "time_budget": self.time_budget, "t0": self.t0,
                "cells": cells}

    @classmethod
    def from_parts(cls, matrix: PerformanceMatrix, curves: Mapping[str, Any] | None) -> PerformanceData:
        """Rebuild from a matrix and :meth:`curves_to_dict` output; ArtifactError naming any inconsistency."""
        if curves is None:
            return cls(matrix=matrix)
        version = curves.get("format_version") if isinstance(curves, Mapping) else None
        if version != CURVES_FORMAT_VERSION:
            raise ArtifactError(f"curves: unsupported format_version {version!r} "
                                f"(this metarec reads {CURVES_FORMAT_VERSION})")
        time_budget, t0, cells = curves.get("time_budget"), curves.get("t0"), curves.get("cells")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (time_budget, t0)):
            raise ArtifactError("curves: time_budget and t0 must be positive numbers")
        if not isinstance(cells, Mapping):
            raise ArtifactError("curves: cells must be a mapping config -> dataset -> curve")
        parsed: dict[tuple[str, str], CellCurve] = {}
        for config, row in cells.items():
            if config not in matrix.configs or not isinstance(row, Mapping):
                raise ArtifactError(f"curves: {config!r} is not a configuration of the performance matrix")
            for dataset, data in row.items():
                if dataset not in matrix.datasets:
                    raise ArtifactError(f"curves: {dataset!r} is not a dataset of the performance matrix")
                parsed[(config, dataset)] = CellCurve.from_dict(data)
        data = cls(matrix=matrix, curves=parsed, time_budget=float(time_budget), t0=float(t0))  # type: ignore[arg-type]
        data.check()
        return data

    def check(self) -> None:
        """Every scored cell has a curve whose ALC at T is the stored score; ArtifactError naming the cell if not."""
        if self.curves is None:
            return
        m = self.matrix
        for i, config in enumerate(m.configs):
            for j, dataset in enumerate(m.datasets):
                value = float(m.scores[i, j])
                curve = self.curves.get((config, dataset))
                if math.isnan(value):
                    continue
                if curve is None:
                    raise ArtifactError(f"curves: cell {config} on {dataset} has a score but no learning curve")
                recomputed = curve.alc(self.time_budget, self.t0)
                if abs(recomputed - value) > SCORE_ATOL:
                    raise ArtifactError(f"curves: cell {config} on {dataset}: the curve's ALC at T = "
                                        f"{self.time_budget:g} s is {recomputed:.6f} but the matrix says {value:.6f}")


def mean_curve(curves: Sequence[Sequence[tuple[float, float]]]) -> list[tuple[float, float]]:
    """The mean of several runs' step curves [(t, NAUC), ...] (a score is 0 before a run's first point).

    At every time any run reports, each run's latest score is averaged; the ALC is linear in the step
    curve, so the ALC of the mean curve is the mean of the runs' ALCs at every T. Several seeds of one cell
    become one curve this way, so the matrix and its re-scoring at other budgets agree.
    """
    runs = [sorted((float(t), float(s)) for t, s in c) for c in curves]
    if not runs:
        raise ValueError("mean_curve needs at least one curve")
    if len(runs) == 1:
        return runs[0]
    times = sorted({t for run in runs for t, _ in run})
    out, pos, last = [], [0] * len(runs), [0.0] * len(runs)
    for t in times:
        for k, run in enumerate(runs):
            while pos[k] < len(run) and run[pos[k]][0] <= t:
                last[k] = run[pos[k]][1]
                pos[k] += 1
        out.append((t, float(np.mean(last))))
    return out


def matrix_from_curves(configs: Sequence[str], datasets: Sequence[str],
                       curves: Mapping[tuple[str, str], CellCurve | None], time_budget: float = DEFAULT_TIME_BUDGET,
                       t0: float = DEFAULT_T0) -> PerformanceData:
    """Performance data whose scores are the curves' ALC at ``time_budget``; a None (failed) cell is NaN."""
    scores = np.full((len(configs), len(datasets)), np.nan)
    kept: dict[tuple[str, str], CellCurve] = {}
    for i, config in enumerate(configs):
        for j, dataset in enumerate(datasets):
            curve = curves.get((config, dataset))
            if curve is not None:
                scores[i, j] = curve.alc(time_budget, t0)
                kept[(config, dataset)] = curve
    matrix = PerformanceMatrix(configs=tuple(configs), datasets=tuple(datasets), scores=scores)
    return PerformanceData(matrix=matrix, curves=kept, time_budget=time_budget, t0=t0)


__all__ = ["FAILED_SCORE", "CellCurve", "PerformanceData", "matrix_from_curves", "mean_curve"]
