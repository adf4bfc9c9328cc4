"""Tune the matchers' own hyperparameters with BOHB (seed 001 §6.2's lists).

Objective: dataset-identification accuracy on held-out batches of the test batch size (default 64);
the BOHB budget is the share of each known dataset's fingerprints used to fit the matcher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer

from metafeatures.evaluation import draw_batches
from metafeatures.matchers import get_matcher
from metafeatures.paths import atomic_savez

OBJECTIVE = "offline_search.matcher_hpo:matcher_objective"
TRAIN_BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
WIDTHS = [16, 32, 64, 128, 256, 512, 1024]


def matcher_space(name: str, seed: int = 0) -> ConfigurationSpace:
    """The seed's search space of one matcher (k-means, MLP vote, moment MLP)."""
    space = ConfigurationSpace(name=f"matcher-{name}", seed=seed)
    if name == "kmeans":
        space.add([Integer("n_clusters", (5, 40), default=20), Integer("n_init", (10, 30), default=10),
                   Integer("max_iter", (100, 500), default=300)])
        return space
    if name not in ("mlp", "moments"):
        raise ValueError(f"no search space for matcher {name!r}")
    space.add([Categorical("batch_size", TRAIN_BATCH_SIZES, default=64), Categorical("hidden", WIDTHS, default=256),
               Float("lr", (1e-5, 1e-2), log=True, default=1e-3), Float("dropout", (0.0, 0.8), default=0.2)])
    if name == "moments":
        space.add([Float("p", (0.0, 0.4), default=0.1)])
        space.add([Categorical(f"use_{s}", [True, False], default=s != "var")
                   for s in ("mean", "median", "std", "var", "skew", "kurt")])
    return space


def save_fingerprint_table(path: Path, features: np.ndarray, labels: np.ndarray) -> Path:
    """The fingerprints of all known datasets in one file, for worker processes."""
    return atomic_savez(path, features=features.astype(np.float32), labels=labels.astype(str))


def split(labels: np.ndarray, fit_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per dataset, a seeded split of row indices into fit and held-out parts."""
    rng = np.random.default_rng(seed)
    fit, held = [], []
    for name in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == name))
        cut = max(1, min(len(rows) - 1, round(len(rows) * fit_fraction)))
        fit.append(rows[:cut])
        held.append(rows[cut:])
    return np.concatenate(fit), np.concatenate(held)


def matcher_objective(config: dict[str, Any], budget: float, table: str, matcher: str, test_batch_size: int = 64,
                      n_batches: int = 20, seed: int = 0) -> dict[str, Any]:
    """Fit ``matcher`` with ``config`` on ``budget`` (share) of the fit rows; loss = −identification accuracy."""
    with np.load(table, allow_pickle=False) as data:
        x, y = data["features"], data["labels"]
    fit, held = split(y, 0.5, seed)
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.permutation(fit[y[fit] == n])[: max(2, round(budget * (y[fit] == n).sum()))]
                           for n in np.unique(y)])
    model = get_matcher(matcher, **config, random_state=seed).fit(x[keep], y[keep])
    hits: list[bool] = []
    for name in np.unique(y):
        rows = held[y[held] == name]
        batches, _ = draw_batches(x[rows], test_batch_size, n_batches, rng)
        hits.extend(model.predict(b) == name for b in batches)
    accuracy = float(np.mean(hits))
    return {"loss": -accuracy, "info": {"accuracy": accuracy, "n_fit": int(len(keep))}}
