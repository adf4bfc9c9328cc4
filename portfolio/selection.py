"""Performance matrix and greedy reduced-portfolio selection (seed 001 §6, Fig. 6).

The performance matrix ``P`` holds the score of every incumbent configuration (row, named by the
dataset whose incumbent it is) on every known dataset (column). A *portfolio* is a set of rows; on a
dataset it is worth its best member's score, and across datasets it is judged by
``0.5 · (min + mean)`` of those per-dataset bests, the criterion seed 001 optimises its reduced
portfolio for. A failed evaluation is stored as NaN and counts as the worst possible score, -1.0
(the lower end of NAUC and ALC).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metafeatures.errors import ArtifactError

#: score a failed (NaN) evaluation counts as during selection: the worst NAUC / ALC
FAILED_SCORE = -1.0
#: two candidate scores closer than this are a tie, resolved by config order
TIE_EPS = 1e-12


def _names(kind: str, values: Iterable[Any]) -> tuple[str, ...]:
    """Check a tuple of row or column names: non-empty strings, at least one, no duplicates."""
    names = tuple(values)
    if not names:
        raise ValueError(f"a performance matrix needs at least one {kind[:-1]}")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{kind} must be non-empty strings, got {name!r}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate {kind}: {', '.join(duplicates)}")
    return names


@dataclass(frozen=True, eq=False)
class PerformanceMatrix:
    """Scores of incumbent configurations (rows) on datasets (columns); NaN marks a failed evaluation."""

    configs: tuple[str, ...]
    datasets: tuple[str, ...]
    scores: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "configs", _names("configs", self.configs))
        object.__setattr__(self, "datasets", _names("datasets", self.datasets))
        try:
            scores = np.array(self.scores, dtype=np.float64)  # a private copy
        except (TypeError, ValueError) as exc:
            raise ValueError(f"scores must be numbers: {exc}") from exc
        expected = (len(self.configs), len(self.datasets))
        if scores.shape != expected:
            raise ValueError(f"scores have shape {scores.shape}, expected (n_configs, n_datasets) = {expected}")
        if np.isinf(scores).any():
            raise ValueError("scores must be finite (NaN marks a failed evaluation; infinity is not allowed)")
        scores.setflags(write=False)
        object.__setattr__(self, "scores", scores)

    def __eq__(self, other: object) -> bool:
        """Same names in the same order and the same scores (NaN equals NaN)."""
        if not isinstance(other, PerformanceMatrix):
            return NotImplemented
        return (self.configs == other.configs and self.datasets == other.datasets
                and bool(np.array_equal(self.scores, other.scores, equal_nan=True)))

    __hash__ = None  # type: ignore[assignment]  # mutable-looking array content: not hashable

    @property
    def shape(self) -> tuple[int, int]:
        """(n_configs, n_datasets)."""
        return len(self.configs), len(self.datasets)

    def filled(self) -> np.ndarray:
        """Scores with failed evaluations (NaN) replaced by FAILED_SCORE, as used by selection."""
        return np.where(np.isnan(self.scores), FAILED_SCORE, self.scores)

    def config_index(self, config: str) -> int:
        """Row of ``config``; KeyError naming the known configs if absent."""
        try:
            return self.configs.index(config)
        except ValueError:
            raise KeyError(f"unknown config {config!r}; configs: {', '.join(self.configs)}") from None

    def dataset_index(self, dataset: str) -> int:
        """Column of ``dataset``; KeyError naming the known datasets if absent."""
        try:
            return self.datasets.index(dataset)
        except ValueError:
            raise KeyError(f"unknown dataset {dataset!r}; datasets: {', '.join(self.datasets)}") from None

    def score(self, config: str, dataset: str, *, filled: bool = True) -> float:
        """Score of ``config`` on ``dataset`` (NaN counts as FAILED_SCORE unless ``filled`` is False)."""
        value = float(self.scores[self.config_index(config), self.dataset_index(dataset)])
        return FAILED_SCORE if filled and math.isnan(value) else value

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: names and a nested list of scores, with ``None`` for failed (NaN) evaluations."""
        return {
            "configs": list(self.configs),
            "datasets": list(self.datasets),
            "scores": [[None if math.isnan(v) else float(v) for v in row] for row in self.scores.tolist()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerformanceMatrix:
        """Rebuild from :meth:`to_dict` output; malformed data is an ArtifactError saying what is wrong."""
        if not isinstance(data, Mapping):
            raise ArtifactError(f"performance matrix: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {"configs", "datasets", "scores"})
        missing = sorted({"configs", "datasets", "scores"} - set(data))
        if unknown or missing:
            raise ArtifactError(f"performance matrix: missing key(s) {missing}, unknown key(s) {unknown}")
        rows = data["scores"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise ArtifactError("performance matrix: scores must be a list of lists")
        for row in rows:
            for v in row:
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    raise ArtifactError(f"performance matrix: score {v!r} is not a number or null")
        if not isinstance(data["configs"], list) or not isinstance(data["datasets"], list):
            raise ArtifactError("performance matrix: configs and datasets must be lists of names")
        try:
            scores = np.array([[np.nan if v is None else float(v) for v in r] for r in rows], dtype=np.float64)
            return cls(configs=tuple(data["configs"]), datasets=tuple(data["datasets"]), scores=scores)
        except ValueError as exc:
            raise ArtifactError(f"performance matrix: {exc}") from exc


@dataclass(frozen=True)
class PortfolioStep:
    """One point of the greedy curve: the first ``size`` members, the one just added, and their quality."""

    size: int
    members: tuple[str, ...]
    added: str
    score: float
    min: float
    mean: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (members as a list)."""
        return {"size": self.size, "members": list(self.members), "added": self.added,
                "score": self.score, "min": self.min, "mean": self.mean}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PortfolioStep:
        """Rebuild from :meth:`to_dict` output; ArtifactError if keys or types are wrong."""
        keys = {"size", "members", "added", "score", "min", "mean"}
        if not isinstance(data, Mapping) or set(data) != keys:
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ArtifactError(f"portfolio step: expected keys {sorted(keys)}, got {got}")
        members = data["members"]
        numbers = [data[k] for k in ("score", "min", "mean")]
        ok = (isinstance(data["size"], int) and not isinstance(data["size"], bool)
              and isinstance(members, list) and all(isinstance(m, str) for m in members)
              and isinstance(data["added"], str)
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers))
        if not ok:
            raise ArtifactError(f"portfolio step: malformed values {dict(data)!r}")
        return cls(size=data["size"], members=tuple(members), added=data["added"],
                   score=float(data["score"]), min=float(data["min"]), mean=float(data["mean"]))


def _member_rows(P: PerformanceMatrix, members: Iterable[str]) -> list[int]:
    """Row indices of ``members`` (at least one, all known, no duplicates)."""
    if isinstance(members, str):
        raise TypeError("members must be a sequence of config names, not one string")
    names = list(members)
    if not names:
        raise ValueError("a portfolio needs at least one member")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate portfolio members: {names}")
    return [P.config_index(name) for name in names]


def portfolio_stats(P: PerformanceMatrix, members: Iterable[str]) -> tuple[float, float, float]:
    """(0.5·(min + mean), min, mean) over datasets of the best member's score per dataset."""
    best = P.filled()[_member_rows(P, members)].max(axis=0)
    lo, avg = float(best.min()), float(best.mean())
    return 0.5 * (lo + avg), lo, avg


def portfolio_score(P: PerformanceMatrix, members: Iterable[str]) -> float:
    """Seed 001's reduced-portfolio criterion: 0.5·(min + mean) over datasets of the best member's score."""
    return portfolio_stats(P, members)[0]


def greedy_reduced_portfolio(P: PerformanceMatrix, max_size: int | None = None) -> list[PortfolioStep]:
    """Grow a portfolio one config at a time, each time adding the one that maximises ``portfolio_score``.

    Returns one step per size m = 1 .. max_size (default: all configs). Ties (scores within TIE_EPS)
    go to the config listed first in ``P.configs``, so the result is deterministic.
    """
    n = len(P.configs)
    if max_size is None:
        max_size = n
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise ValueError(f"max_size must be an int >= 1 or None, got {max_size!r}")
    filled = P.filled()
    current = np.full(len(P.datasets), -np.inf)
    members: list[str] = []
    steps: list[PortfolioStep] = []
    for size in range(1, min(max_size, n) + 1):
        best: tuple[float, float, float, int] | None = None
        for i, name in enumerate(P.configs):
            if name in members:
                continue
            candidate = np.maximum(current, filled[i])
            lo, avg = float(candidate.min()), float(candidate.mean())
            score = 0.5 * (lo + avg)
            if best is None or score > best[0] + TIE_EPS:
                best = (score, lo, avg, i)
        assert best is not None  # size <= n, so an unused config exists
        score, lo, avg, i = best
        current = np.maximum(current, filled[i])
        members.append(P.configs[i])
        steps.append(PortfolioStep(size=size, members=tuple(members), added=P.configs[i],
                                   score=score, min=lo, mean=avg))
    return steps


def choose_reduced(steps: Sequence[PortfolioStep], tolerance: float = 0.0) -> PortfolioStep:
    """The smallest step whose score is within ``tolerance`` of the best step's (memory vs. quality)."""
    if not steps:
        raise ValueError("no portfolio steps to choose from")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    best = max(step.score for step in steps)
    return min((s for s in steps if s.score >= best - tolerance - TIE_EPS), key=lambda s: s.size)
