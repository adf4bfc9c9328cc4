"""Selection policies: from the matcher's evidence and the performance matrix to ranked candidates.

Every policy has one interface (:func:`rank_candidates`) and is chosen by name:

- ``incumbent``: seed 001 as written — the best-matching known dataset's own BOHB incumbent (then the next
  neighbours' incumbents), kept for fidelity and as a baseline;
- ``neighbors``: score(c) = Σ over the top-k neighbours n of w_n · P̃(c, n), with P̃ the matrix normalised per
  dataset (0 = worst candidate there, 1 = best) and w_n from the matcher's scores (ZAP / Quick-Tune style:
  choose by predicted performance across the matrix, never by copying one neighbour's incumbent);
- ``single_best``: the best mean score over the known datasets, ignoring the probe (auto-sklearn's robust
  default);
- ``reduced``: the reduced-portfolio member that the ``neighbors`` score ranks best.

The functions work on index sets, so the leave-one-out evaluation can hide datasets (columns) and the
incumbents tuned on them (rows) without building a new matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from metafeatures.errors import ArtifactError, ConfigError
from portfolio.novelty import NoveltyCalibration

POLICIES: tuple[str, ...] = ("incumbent", "neighbors", "single_best", "reduced")
WEIGHTINGS: tuple[str, ...] = ("uniform", "score", "rank")
#: the grid the build-time inner leave-one-out chooses k from (capped at the number of known datasets)
K_GRID: tuple[int, ...] = (1, 2, 3, 5, 8)


@dataclass(frozen=True)
class NeighborParams:
    """How the ``neighbors`` and ``reduced`` policies weigh the matcher's ranking: top ``k``, ``weighting``."""

    k: int = 3
    weighting: str = "score"

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError("k", self.k, "must be an integer >= 1")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError("weighting", self.weighting, f"must be one of {', '.join(WEIGHTINGS)}")

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {"k": self.k, "weighting": self.weighting}


class Ranked(NamedTuple):
    """One ranked candidate: its row, its predicted score on the matrix's scale (ALC at the budget) and the
    ``key`` the policy sorted by (``neighbors``/``reduced``: the weighted mean of the per-dataset normalised
    score, 0 = worst candidate on a neighbour, 1 = best; ``single_best``: the mean ALC; ``incumbent``: the
    matcher's score of the neighbour whose incumbent it is)."""

    row: int
    predicted: float
    key: float


def check_policy(policy: str) -> str:
    """``policy`` if it is a known policy name, else ConfigError listing them."""
    if policy not in POLICIES:
        raise ConfigError("policy", policy, f"must be one of {', '.join(POLICIES)}")
    return policy


def normalise_columns(scores: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    """Scores rescaled per column to [0, 1] over ``rows`` (0 = worst of them, 1 = best; a flat column is 0.5)."""
    sub = scores[list(rows)]
    lo, hi = sub.min(axis=0), sub.max(axis=0)
    span = hi - lo
    flat = span < 1e-12
    out = (scores - lo) / np.where(flat, 1.0, span)
    out[:, flat] = 0.5
    return out


def neighbor_weights(ranking: Sequence[tuple[int, float]], params: NeighborParams) -> dict[int, float]:
    """Weights (summing to 1) of the top-k columns of ``ranking`` ((column, matcher score), best first)."""
    top = list(ranking[: params.k])
    if not top:
        return {}
    if params.weighting == "uniform":
        raw = [1.0] * len(top)
    elif params.weighting == "rank":
        raw = [1.0 / (r + 1) for r in range(len(top))]
    else:
        raw = [max(s, 0.0) for _, s in top]
        if sum(raw) <= 0:  # the matcher gave the top-k nothing: fall back to equal weights
            raw = [1.0] * len(top)
    total = sum(raw)
    return {col: w / total for (col, _), w in zip(top, raw, strict=True)}


def rank_candidates(policy: str, scores: np.ndarray, rows: Sequence[int], columns: Sequence[int],
                    ranking: Sequence[tuple[int, float]], params: NeighborParams,
                    incumbent_rows: Mapping[int, int] | None = None,
                    reduced_rows: Sequence[int] = ()) -> list[Ranked]:
    """Candidate rows ranked best first with their predicted score (on ``scores``' scale) and the key they were
    sorted by, under ``policy``.

    ``rows``: the candidates allowed (limits applied, held-out incumbents removed); ``columns``: the known
    datasets usable as evidence; ``ranking``: the matcher's (column, score) over those columns, best first;
    ``incumbent_rows``: column -> row of that dataset's own incumbent (for ``incumbent``); ``reduced_rows``:
    the reduced portfolio's rows (for ``reduced``). Ties go to the lower row index, so answers are stable.
    """
    check_policy(policy)
    allowed = sorted(set(rows))
    if not allowed:
        return []
    cols = list(columns)
    if policy == "single_best":
        means = scores[np.ix_(allowed, cols)].mean(axis=1)
        return _sorted(allowed, means, means)
    if policy == "incumbent":
        out: list[Ranked] = []
        for col, match in ranking:
            row = (incumbent_rows or {}).get(col)
            if row is not None and row in allowed and row not in {r.row for r in out}:
                out.append(Ranked(row, float(scores[row, col]), float(match)))
        return out
    if policy == "reduced":
        allowed = [r for r in allowed if r in set(reduced_rows)] or allowed
    weights = neighbor_weights(ranking, params)
    normalised = normalise_columns(scores, allowed)
    keys = sum(w * normalised[allowed, col] for col, w in weights.items())
    predicted = sum(w * scores[allowed, col] for col, w in weights.items())
    return _sorted(allowed, np.asarray(keys, dtype=float), np.asarray(predicted, dtype=float))


def _sorted(rows: Sequence[int], keys: np.ndarray, predicted: np.ndarray) -> list[Ranked]:
    """Rows by descending key (ties: lower row first), each with its predicted score and key."""
    order = sorted(range(len(rows)), key=lambda i: (-float(keys[i]), rows[i]))
    return [Ranked(rows[i], float(predicted[i]), float(keys[i])) for i in order]


@dataclass(frozen=True)
class SelectionSettings:
    """What a portfolio stores about selection: the default policy (and why), the neighbour weighting per
    matcher (chosen by an inner leave-one-out at build time) and the novelty calibration."""

    default_policy: str = "neighbors"
    reason: str = "not calibrated: the neighbors policy with k = 3 and score weights"
    neighbors: Mapping[str, NeighborParams] = field(default_factory=dict)
    novelty: NoveltyCalibration | None = None
    evaluation: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_policy(self.default_policy)

    def params_for(self, matcher: str, n_datasets: int) -> NeighborParams:
        """The calibrated neighbour parameters of ``matcher`` (default k = 3, score weights), k capped."""
        params = self.neighbors.get(matcher, NeighborParams())
        return NeighborParams(k=max(1, min(params.k, n_datasets)), weighting=params.weighting)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"default_policy": self.default_policy, "reason": self.reason,
                "neighbors": {m: p.to_dict() for m, p in sorted(self.neighbors.items())},
                "novelty": None if self.novelty is None else self.novelty.to_dict(),
                "evaluation": dict(self.evaluation)}

    @classmethod
    def from_dict(cls, data: Any) -> SelectionSettings:
        """Rebuild from :meth:`to_dict`; ArtifactError if malformed."""
        keys = {"default_policy", "reason", "neighbors", "novelty", "evaluation"}
        if not isinstance(data, Mapping) or set(data) != keys:
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ArtifactError(f"selection: expected keys {sorted(keys)}, got {got}")
        try:
            neighbors = {str(m): NeighborParams(k=p["k"], weighting=p["weighting"])
                         for m, p in data["neighbors"].items()}
            novelty = None if data["novelty"] is None else NoveltyCalibration.from_dict(data["novelty"])
            return cls(default_policy=data["default_policy"], reason=str(data["reason"]), neighbors=neighbors,
                       novelty=novelty, evaluation=dict(data["evaluation"]))
        except (ConfigError, KeyError, TypeError, AttributeError) as exc:
            raise ArtifactError(f"selection: {exc}") from exc
