"""Novelty: how far a probe batch is from every known dataset, as a calibrated score in [0, 1].

The matcher's absolute distance (:meth:`BaseMatcher.distance`) of a batch to its *nearest* known dataset is
compared with the same distance for known datasets held out in turn (leave-one-out: each one's batches
measured against the *other* known datasets). ``novelty`` is the share of those held-out batches that were
closer to a known dataset than the probe is: a conformal p-value read the other way round. 0.9 means
"further from anything known than 90 % of known datasets were from each other"; above the portfolio's
threshold (chosen by leave-one-out at build time) the recommendation falls back to the robust choice.
Distances shrink with the batch size (a batch mean is less noisy), so the calibration is kept per batch
size and the nearest calibrated size is used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metafeatures.errors import ArtifactError

CALIBRATION_BATCH_SIZES: tuple[int, ...] = (8, 64, 512)
N_CALIBRATION_BATCHES = 10


@dataclass(frozen=True)
class NoveltyCalibration:
    """Held-out nearest distances per batch size, and the novelty above which recommendations fall back."""

    distances: Mapping[int, tuple[float, ...]]
    threshold: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.distances or any(not d for d in self.distances.values()):
            raise ValueError("a novelty calibration needs held-out distances for at least one batch size")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"novelty threshold must lie in [0, 1], got {self.threshold!r}")

    def reference(self, batch_size: int) -> tuple[float, ...]:
        """The calibration distances of the batch size nearest (on a log scale) to ``batch_size``."""
        size = min(self.distances, key=lambda b: (abs(math.log(b) - math.log(max(batch_size, 1))), b))
        return self.distances[size]

    def novelty(self, nearest_distance: float, batch_size: int) -> float:
        """Share of held-out known batches (same batch size) that were nearer to a known dataset than this one."""
        ref = self.reference(batch_size)
        return float(np.searchsorted(np.asarray(ref), nearest_distance, side="left") / len(ref))

    def is_novel(self, novelty: float) -> bool:
        """True when ``novelty`` is above the stored threshold (never without one)."""
        return self.threshold is not None and novelty > self.threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (distances rounded to 6 digits, sorted)."""
        return {"distances": {str(b): [round(v, 6) for v in d] for b, d in sorted(self.distances.items())},
                "threshold": self.threshold, "details": dict(self.details)}

    @classmethod
    def from_dict(cls, data: Any) -> NoveltyCalibration:
        """Rebuild from :meth:`to_dict`; ArtifactError if malformed."""
        try:
            distances = {int(b): tuple(sorted(float(v) for v in d)) for b, d in data["distances"].items()}
            threshold = data["threshold"]
            return cls(distances=distances, threshold=None if threshold is None else float(threshold),
                       details=dict(data.get("details", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"novelty calibration: malformed ({exc})") from exc


def held_out_distances(matcher: Any, fingerprints: Mapping[str, np.ndarray], batch_size: int, n_batches: int,
                       seed: int, exclude: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[float]]:
    """Per known dataset: nearest distances of random batches of it to the *other* known datasets.

    ``exclude[d]`` lists more datasets hidden when ``d`` is held out (its group's siblings), so a derived
    dataset is not "known" just because its source is.
    """
    from metafeatures.evaluation import draw_batches

    classes = [str(c) for c in matcher.classes_]
    out: dict[str, list[float]] = {}
    for k, name in enumerate(classes):
        hidden = {name, *((exclude or {}).get(name, ()))}
        keep = np.array([c not in hidden for c in classes])
        if not keep.any():
            continue
        rng = np.random.default_rng([seed, batch_size, k])
        batches, _ = draw_batches(fingerprints[name], batch_size, n_batches, rng)
        out[name] = [float(matcher.distance(b)[keep].min()) for b in batches]
    return out


def calibrate_novelty(matcher: Any, fingerprints: Mapping[str, np.ndarray],
                      batch_sizes: Sequence[int] = CALIBRATION_BATCH_SIZES, n_batches: int = N_CALIBRATION_BATCHES,
                      seed: int = 0, exclude: Mapping[str, Sequence[str]] | None = None,
                      threshold: float | None = None) -> NoveltyCalibration:
    """Held-out nearest distances of every known dataset at each batch size (see the module docstring)."""
    largest = min(len(f) for f in fingerprints.values())
    sizes = sorted({min(b, largest) for b in batch_sizes})
    distances = {b: tuple(sorted(v for d in held_out_distances(matcher, fingerprints, b, n_batches, seed,
                                                                exclude).values() for v in d))
                 for b in sizes}
    return NoveltyCalibration(distances=distances, threshold=threshold,
                              details={"n_batches": n_batches, "seed": seed, "datasets": len(fingerprints)})
