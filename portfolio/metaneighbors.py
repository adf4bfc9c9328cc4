"""Meta-features of a dataset summary, and known datasets ranked by them: evidence that needs no images.

ZAP and auto-sklearn 1 describe a dataset by a few numbers (classes, images, resolution, colour). The
leave-one-group-out evaluation found that the ``neighbors`` policy over these neighbours predicts the
shipped portfolio's best candidate at T = 1200 s better than the fingerprint matchers (docs/evaluation.md),
so the evaluation and the recommender rank neighbours with this one definition.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)


def meta_features(summary: Mapping[str, Any]) -> np.ndarray:
    """Simple meta-features of a DatasetSummary (ZAP / auto-sklearn 1 style): log classes, log images,
    log mean resolution (geometric mean of height and width) and channels."""
    resolution = math.sqrt(float(summary["mean_height"]) * float(summary["mean_width"]))
    return np.array([math.log(float(summary["n_classes"])), math.log(float(summary["n_items"])),
                     math.log(max(resolution, 1.0)), float(summary["channels"])])


def metafeature_ranking(known: Mapping[K, np.ndarray], target: np.ndarray) -> list[tuple[K, float, float]]:
    """``known`` ranked by meta-feature distance to ``target``, nearest first, as (key, score, distance).

    Features are standardised over the known datasets (a constant feature is left unscaled); the score is
    1 / (1 + distance), so the ``score`` weighting of :func:`portfolio.policies.neighbor_weights` is a kernel.
    Ties keep the order of ``known``.
    """
    keys = list(known)
    if not keys:
        return []
    train = np.stack([known[k] for k in keys])
    std = train.std(axis=0)  # centring would not change distances, so only the scale matters
    std[std < 1e-12] = 1.0
    distances = np.linalg.norm((train - target) / std, axis=1)
    return [(keys[i], 1.0 / (1.0 + float(distances[i])), float(distances[i]))
            for i in np.argsort(distances, kind="stable")]


__all__ = ["meta_features", "metafeature_ranking"]
