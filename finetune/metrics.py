"""AutoDL scoring: NAUC = 2·AUC − 1 per prediction and ALC, the area under the log-time learning curve.

Follows the official AutoDL scoring code: per-class ROC AUC from tied ranks, averaged over classes that
have both positive and negative examples; time is log-scaled as t̃ = log(1 + t/t0) / log(1 + T/t0),
the curve is a step function starting at (0, 0), and the last score is held until t̃ = 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

DEFAULT_TIME_BUDGET = 1200.0
DEFAULT_T0 = 60.0


def _one_hot(y_true: np.ndarray, n_classes: int) -> np.ndarray:
    """(n,) integer labels -> (n, k) 0/1 matrix; (n, k) input is returned as 0/1."""
    y = np.asarray(y_true)
    if y.ndim == 2:
        return (y > 0).astype(np.int8)
    if y.ndim != 1:
        raise ValueError(f"y_true must be (n,) labels or (n, k) indicators, got shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    out = np.zeros((len(y), n_classes), dtype=np.int8)
    out[np.arange(len(y)), y.astype(np.int64)] = 1
    return out


def per_class_auc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """ROC AUC of each class column from tied ranks; NaN where a column lacks positives or negatives."""
    scores = np.asarray(y_score, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"y_score must be (n, k), got shape {scores.shape}")
    truth = _one_hot(y_true, scores.shape[1])
    if truth.shape != scores.shape:
        raise ValueError(f"y_true {truth.shape} and y_score {scores.shape} do not match")
    aucs = np.full(scores.shape[1], np.nan)
    for k in range(scores.shape[1]):
        pos = truth[:, k] == 1
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos and n_neg:
            ranks = rankdata(scores[:, k], method="average")
            aucs[k] = (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return aucs


def nauc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Normalised AUC 2·AUC − 1, AUC averaged over classes that have both labels; ValueError if none has."""
    aucs = per_class_auc(y_true, y_score)
    valid = aucs[~np.isnan(aucs)]
    if not len(valid):
        raise ValueError("no class has both positive and negative examples: NAUC is undefined")
    return float(2.0 * valid.mean() - 1.0)


def transform_time(t: float, time_budget: float = DEFAULT_TIME_BUDGET, t0: float = DEFAULT_T0) -> float:
    """AutoDL's log-scaled time in [0, 1] for 0 <= t <= time_budget."""
    if time_budget <= 0 or t0 <= 0:
        raise ValueError(f"time_budget and t0 must be positive, got {time_budget}, {t0}")
    return math.log1p(t / t0) / math.log1p(time_budget / t0)


def alc(times: Sequence[float], scores: Sequence[float], time_budget: float = DEFAULT_TIME_BUDGET,
        t0: float = DEFAULT_T0) -> float:
    """Area under the step learning curve over log-scaled time; points after ``time_budget`` are ignored."""
    if len(times) != len(scores):
        raise ValueError(f"{len(times)} times but {len(scores)} scores")
    if any(t < 0 for t in times):
        raise ValueError("times must be non-negative")
    points = sorted((float(t), float(s)) for t, s in zip(times, scores, strict=True) if t <= time_budget)
    area, prev_x, prev_s = 0.0, 0.0, 0.0
    for t, s in points:
        x = transform_time(t, time_budget, t0)
        area += (x - prev_x) * prev_s
        prev_x, prev_s = x, s
    return area + (1.0 - prev_x) * prev_s
