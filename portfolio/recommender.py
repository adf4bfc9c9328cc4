"""Recommend a fine-tuning configuration for a new dataset from a batch of its fingerprints (seed 001 §6).

The portfolio's matcher ranks the known datasets by how much the batch resembles them; the incumbent
configuration of the best-ranked dataset is recommended. With ``reduced=True`` only the reduced
portfolio's configurations may be recommended: the one that scored best (performance matrix) on the
best-ranked dataset.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from metafeatures.errors import ConfigError
from portfolio.artifact import LoadedPortfolio


class Neighbor(BaseModel):
    """A known dataset and the matcher's score for it (scores of all known datasets sum to 1)."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    score: Annotated[float, Field(ge=0.0, le=1.0)]


class Recommendation(BaseModel):
    """A recommended configuration with the evidence behind it and the portfolio it came from."""

    model_config = ConfigDict(frozen=True)

    configuration: dict[str, Any]
    neighbors: list[Neighbor]
    best_match: str
    incumbent_of: str
    portfolio_version: str
    matcher: str
    fingerprint_spec: dict[str, Any]
    restricted_to_reduced: bool


class Recommender:
    """Turns a batch of fingerprints into a configuration using one matcher of a loaded portfolio."""

    def __init__(self, loaded_portfolio: LoadedPortfolio, matcher: str = "mlp") -> None:
        available = sorted(loaded_portfolio.matchers)
        if matcher not in loaded_portfolio.matchers:
            raise ConfigError("matcher", matcher, f"not in portfolio {loaded_portfolio.version}; "
                                                  f"available: {', '.join(available)}")
        self.portfolio = loaded_portfolio
        self.matcher_name = matcher
        self.matcher = loaded_portfolio.matchers[matcher]

    @property
    def feature_dim(self) -> int:
        """Width of the fingerprints this recommender expects (the portfolio's fingerprint spec)."""
        return self.portfolio.fingerprint_spec.feature_dim

    def _batch(self, features: np.ndarray) -> np.ndarray:
        """Check a batch (N, D) or one fingerprint (D,): numeric, finite, non-empty, of the spec's width."""
        batch = np.asarray(features)
        if batch.ndim == 1:
            batch = batch.reshape(1, -1)
        if batch.ndim != 2:
            raise ValueError(f"features must be (n_samples, {self.feature_dim}) or ({self.feature_dim},), "
                             f"got shape {np.shape(features)}")
        if batch.shape[1] != self.feature_dim:
            raise ValueError(f"features have dimension {batch.shape[1]}, expected {self.feature_dim} "
                             f"(fingerprint spec of portfolio {self.portfolio.version})")
        if batch.shape[0] == 0:
            raise ValueError("features: the batch is empty")
        if not np.issubdtype(batch.dtype, np.number) or np.issubdtype(batch.dtype, np.complexfloating):
            raise ValueError(f"features must be real numbers, got dtype {batch.dtype}")
        batch = batch.astype(np.float64, copy=False)
        if not np.isfinite(batch).all():
            raise ValueError("features contain NaN or infinite values")
        return batch

    def best_reduced_member(self, dataset: str) -> str:
        """Among the reduced portfolio, the config scoring best on ``dataset`` (ties: reduced-portfolio order)."""
        matrix = self.portfolio.matrix
        best, best_score = "", -math.inf
        for member in self.portfolio.portfolio.reduced_portfolio:
            score = matrix.score(member, dataset)
            if score > best_score:
                best, best_score = member, score
        return best

    def recommend(self, features: np.ndarray, top_k: int = 5, reduced: bool = False) -> Recommendation:
        """Rank known datasets for the batch and return the best match's (or best reduced member's) configuration."""
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
        ranking = self.matcher.rank(self._batch(features))
        best_match = ranking[0][0]
        source = self.best_reduced_member(best_match) if reduced else best_match
        return Recommendation(
            configuration=self.portfolio.configuration(source).to_dict(),
            neighbors=[Neighbor(dataset=name, score=min(max(score, 0.0), 1.0)) for name, score in ranking[:top_k]],
            best_match=best_match,
            incumbent_of=source,
            portfolio_version=self.portfolio.version,
            matcher=self.matcher_name,
            fingerprint_spec=self.portfolio.fingerprint_spec.to_dict(),
            restricted_to_reduced=bool(reduced),
        )
