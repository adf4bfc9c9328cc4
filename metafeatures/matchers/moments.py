"""Moment MLP matcher: per-feature batch statistics (a "precalculation layer") fed to one Swish MLP.

Instead of classifying samples one by one and voting, this matcher summarises the whole batch: for every
feature it computes the selected statistics across the batch's samples (mean, median, std, variance,
skewness, excess kurtosis, and the p- and (1-p)-quantiles), concatenates them into one vector of length
``n_stats * n_features`` and lets an MLP name the dataset. It can therefore tell apart datasets whose
samples overlap one by one but whose spread or shape differs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from metafeatures.matchers._base import BaseMatcher, check_float_param, check_int_param, seed_from
from metafeatures.matchers.mlp import (
    check_mlp_params,
    mlp_from_arrays,
    mlp_state_arrays,
    torch_threads,
    train_mlp,
)

#: order in which the selected statistics are concatenated
STAT_ORDER: tuple[str, ...] = ("mean", "median", "std", "var", "skew", "kurt", "q_low", "q_high")

#: largest set size drawn when ``set_size`` is None
MAX_SET_SIZE = 512

#: at most this many float32 values per chunk when computing training statistics (~64 MiB)
_CHUNK_ELEMENTS = 1 << 24


def batch_statistics(x: np.ndarray, stats: tuple[str, ...], p: float) -> np.ndarray:
    """Per-feature statistics across axis 1 of ``x`` (k sets, b samples, d features) -> (k, n_stats * d).

    ``stats`` is a subsequence of :data:`STAT_ORDER`; ``q_low``/``q_high`` are the ``p``/``1-p``
    quantiles (linear interpolation, as numpy's default; the median is the 0.5 quantile). Variance and
    std are population (ddof=0) values. Where a feature has (numerically) zero variance in a set -- always
    when b == 1 -- skewness and kurtosis are defined as 0, so the output is finite for any b >= 1.
    Computed in float32 with numpy (its vectorised sort is much faster than torch's on CPU).
    """
    x = np.asarray(x, dtype=np.float32)
    k, b, d = x.shape
    wanted = set(stats)
    out: dict[str, np.ndarray] = {}
    mean = x.mean(axis=1)
    out["mean"] = mean
    if wanted & {"median", "q_low", "q_high"}:
        xs = np.sort(np.ascontiguousarray(x.transpose(0, 2, 1)), axis=2)  # (k, d, b)

        def quantile(q: float) -> np.ndarray:
            h = (b - 1) * q
            lo = int(np.floor(h))
            hi = min(lo + 1, b - 1)
            frac = np.float32(h - lo)
            return xs[:, :, lo] + frac * (xs[:, :, hi] - xs[:, :, lo])

        out["median"] = quantile(0.5)
        out["q_low"] = quantile(p)
        out["q_high"] = quantile(1.0 - p)
    if wanted & {"std", "var", "skew", "kurt"}:
        c = x - mean[:, None, :]
        c2 = c * c
        var = c2.mean(axis=1)
        out["var"] = var
        out["std"] = np.sqrt(var)
        if wanted & {"skew", "kurt"}:
            degenerate = var <= 1e-10 * (1.0 + mean * mean)
            safe = np.where(degenerate, np.float32(1.0), var)
            out["skew"] = np.where(
                degenerate, np.float32(0.0), (c2 * c).mean(axis=1) / (safe * np.sqrt(safe))
            )
            out["kurt"] = np.where(degenerate, np.float32(0.0), (c2 * c2).mean(axis=1) / (safe * safe) - 3.0)
    return np.concatenate([out[s].astype(np.float32, copy=False) for s in stats], axis=1)


class MomentMLPMatcher(BaseMatcher):
    """Match a batch from per-feature statistics across its samples, classified by one Swish MLP.

    Training data are random sets of fingerprints drawn (without replacement) from each known dataset:
    ``sets_per_dataset`` sets per dataset, drawn once at the start of ``fit``. With ``set_size=None`` each
    set's size is drawn log-uniformly from 1..min(512, dataset size), so one model serves every test batch
    size; an int fixes the size (capped at the dataset size). Each set becomes one statistics vector
    (see :func:`batch_statistics`); the vectors are standardised (``stat_mean_``/``stat_scale_``, always,
    independent of ``standardize``, which concerns the raw fingerprints) and fed to an MLP with two hidden
    layers of width ``hidden``, Swish activations and dropout, trained with Adam on cross-entropy.
    ``rank`` returns the softmax over datasets for the batch (no vote). ``p`` (0..0.4) adds the p- and
    (1-p)-quantiles when > 0. The default 64 sets per dataset train in seconds; datasets that differ only
    subtly (e.g. in spread alone) need more (a few hundred).
    """

    _fitted_attrs: ClassVar[tuple[str, ...]] = ("model_", "stat_mean_", "stat_scale_")

    def __init__(
        self,
        hidden: int = 256,
        lr: float = 1e-3,
        dropout: float = 0.2,
        batch_size: int = 32,
        max_epochs: int = 40,
        p: float = 0.1,
        use_mean: bool = True,
        use_median: bool = True,
        use_std: bool = True,
        use_var: bool = False,
        use_skew: bool = True,
        use_kurt: bool = True,
        set_size: int | None = None,
        sets_per_dataset: int = 64,
        standardize: bool = True,
        random_state: Any = 0,
    ) -> None:
        self.hidden = hidden
        self.lr = lr
        self.dropout = dropout
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.p = p
        self.use_mean = use_mean
        self.use_median = use_median
        self.use_std = use_std
        self.use_var = use_var
        self.use_skew = use_skew
        self.use_kurt = use_kurt
        self.set_size = set_size
        self.sets_per_dataset = sets_per_dataset
        self.standardize = standardize
        self.random_state = random_state

    @property
    def statistics(self) -> tuple[str, ...]:
        """Names of the statistics the precalculation layer computes, in concatenation order."""
        flags = {
            "mean": self.use_mean,
            "median": self.use_median,
            "std": self.use_std,
            "var": self.use_var,
            "skew": self.use_skew,
            "kurt": self.use_kurt,
            "q_low": self.p > 0,
            "q_high": self.p > 0,
        }
        return tuple(s for s in STAT_ORDER if flags[s])

    def _check_params(self) -> None:
        """Validate the MLP, statistics and set-sampling hyper-parameters."""
        super()._check_params()
        check_mlp_params(self)
        check_float_param("p", self.p, 0.0, 0.4)
        for name in ("use_mean", "use_median", "use_std", "use_var", "use_skew", "use_kurt"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not self.statistics:
            raise ValueError("MomentMLPMatcher needs at least one statistic: set a use_* flag or p > 0")
        if self.set_size is not None:
            check_int_param("set_size", self.set_size, 1)
        check_int_param("sets_per_dataset", self.sets_per_dataset, 1)

    def _set_vectors(self, X: np.ndarray) -> torch.Tensor:
        """Statistics vector(s) of one standardised batch, standardised with the training statistics."""
        v = batch_statistics(np.asarray(X, dtype=np.float32)[None], self.statistics, float(self.p))
        return torch.from_numpy((v - self.stat_mean_) / self.stat_scale_)

    def _training_sets(self, X: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
        """Draw the training sets and return their (unstandardised) statistics vectors, float32."""
        rng = np.random.RandomState(seed)
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        rows_of = [np.flatnonzero(y == c) for c in range(n_classes)]
        members: list[np.ndarray] = []
        for c in range(n_classes):
            n_c = len(rows_of[c])
            if self.set_size is None:
                top = min(MAX_SET_SIZE, n_c)
                sizes = np.floor(np.exp(rng.uniform(0.0, np.log(top + 1), size=self.sets_per_dataset)))
                sizes = np.clip(sizes.astype(np.int64), 1, top)
            else:
                sizes = np.full(self.sets_per_dataset, min(int(self.set_size), n_c), dtype=np.int64)
            for s in sizes:
                members.append(rows_of[c][rng.permutation(n_c)[:s]])
        n_stats, d = len(self.statistics), X.shape[1]
        vectors = np.empty((len(members), n_stats * d), dtype=np.float32)
        sizes_all = np.array([len(m) for m in members])
        for s in np.unique(sizes_all):
            ids = np.flatnonzero(sizes_all == s)
            step = max(1, _CHUNK_ELEMENTS // int(s * d))
            for start in range(0, len(ids), step):
                chunk = ids[start : start + step]
                idx = np.stack([members[i] for i in chunk])
                vectors[chunk] = batch_statistics(X32[idx], self.statistics, float(self.p))
        return vectors

    def _fit(self, X: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        """Draw random sets per dataset, compute their statistics and train the MLP on them."""
        seed = seed_from(self.random_state)
        vectors = self._training_sets(X, y, n_classes, seed)
        labels = np.repeat(np.arange(n_classes), self.sets_per_dataset)
        stat_mean = vectors.astype(np.float64).mean(axis=0)
        stat_std = vectors.astype(np.float64).std(axis=0)
        stat_scale = np.where(stat_std > 1e-8, stat_std, 1.0)
        self.stat_mean_ = stat_mean.astype(np.float32)
        self.stat_scale_ = stat_scale.astype(np.float32)
        self.model_ = train_mlp(
            (vectors - self.stat_mean_) / self.stat_scale_,
            labels,
            n_classes,
            hidden=self.hidden,
            dropout=self.dropout,
            lr=self.lr,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            seed=seed,
        )

    def _batch_scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Softmax over datasets of the MLP applied to the batch's statistics vector."""
        with torch_threads(), torch.inference_mode():
            logits = self.model_(self._set_vectors(X))[0]
            probs = torch.softmax(logits.double(), dim=0).numpy()
        probs = probs / probs.sum()
        return probs, probs

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state: statistics standardisation and network weights."""
        meta, arrays = super()._get_state()
        meta["statistics"] = list(self.statistics)
        arrays["stat_mean"] = self.stat_mean_
        arrays["stat_scale"] = self.stat_scale_
        arrays.update(mlp_state_arrays(self.model_))
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore the state written by :meth:`_get_state`."""
        super()._set_state(meta, arrays)
        if list(meta["statistics"]) != list(self.statistics):
            raise ValueError(f"saved statistics {meta['statistics']} do not match params {self.statistics}")
        n_in = len(self.statistics) * self.n_features_in_
        stat_mean = np.asarray(arrays["stat_mean"], dtype=np.float32)
        stat_scale = np.asarray(arrays["stat_scale"], dtype=np.float32)
        if stat_mean.shape != (n_in,) or stat_scale.shape != (n_in,):
            raise ValueError("statistics standardisation arrays do not match n_features_in_")
        self.stat_mean_ = stat_mean
        self.stat_scale_ = stat_scale
        self.model_ = mlp_from_arrays(arrays, n_in, self.hidden, len(self.classes_), self.dropout)
