"""K-means vote matcher: cluster known fingerprints, label clusters by majority dataset, vote per batch."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.cluster import KMeans

from metafeatures.matchers._base import BaseMatcher, check_int_param


class KMeansVoteMatcher(BaseMatcher):
    """Match a batch to a known dataset by majority vote over the k-means clusters its samples fall in.

    ``fit`` runs k-means on the (standardised) fingerprints of all known datasets; each cluster is
    labelled with the dataset most of its members come from (ties: alphabetically first), and the full
    dataset distribution of each cluster is kept in ``cluster_dist_``. A batch's samples are assigned to
    their nearest centre and vote for that cluster's label. Scores are the vote shares. Datasets with
    equal vote share (including datasets with no votes) are ordered by the mean, over the batch's samples,
    of their clusters' dataset distributions, then by name.

    If there are fewer training samples than ``n_clusters``, k-means uses one cluster per sample
    (``n_clusters_`` is the number actually used).
    """

    _fitted_attrs: ClassVar[tuple[str, ...]] = ("cluster_centers_", "cluster_labels_", "cluster_dist_")

    def __init__(
        self,
        n_clusters: int = 20,
        n_init: int = 10,
        max_iter: int = 300,
        standardize: bool = True,
        random_state: Any = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.standardize = standardize
        self.random_state = random_state

    def _check_params(self) -> None:
        """Validate the k-means hyper-parameters."""
        super()._check_params()
        check_int_param("n_clusters", self.n_clusters, 1)
        check_int_param("n_init", self.n_init, 1)
        check_int_param("max_iter", self.max_iter, 1)

    def _fit(self, X: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        """Cluster the fingerprints and record each cluster's dataset counts, distribution and label."""
        k = int(min(self.n_clusters, X.shape[0]))
        km = KMeans(n_clusters=k, n_init=self.n_init, max_iter=self.max_iter, random_state=self.random_state)
        km.fit(X)
        centers = np.ascontiguousarray(km.cluster_centers_, dtype=np.float64)
        assign = _nearest_center(X, centers)
        counts = np.zeros((k, n_classes), dtype=np.int64)
        np.add.at(counts, (assign, y), 1)
        prior = np.bincount(y, minlength=n_classes) / len(y)
        self.n_clusters_ = k
        self.cluster_centers_ = centers
        self.cluster_counts_ = counts
        self.cluster_dist_, self.cluster_labels_ = _dist_and_labels(counts, prior)

    def _batch_scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vote shares of the batch's cluster labels, with the mean cluster distribution as tie-break."""
        assign = _nearest_center(X, self.cluster_centers_)
        n_classes = len(self.classes_)
        votes = np.bincount(self.cluster_labels_[assign], minlength=n_classes).astype(np.float64)
        return votes / votes.sum(), self.cluster_dist_[assign].mean(axis=0)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state: cluster centres, per-cluster dataset counts, distributions and labels."""
        meta, arrays = super()._get_state()
        meta["n_clusters_"] = int(self.n_clusters_)
        arrays["cluster_centers"] = self.cluster_centers_
        arrays["cluster_counts"] = self.cluster_counts_
        arrays["cluster_dist"] = self.cluster_dist_
        arrays["cluster_labels"] = self.cluster_labels_
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore the state written by :meth:`_get_state`."""
        super()._set_state(meta, arrays)
        k = int(meta["n_clusters_"])
        centers = np.asarray(arrays["cluster_centers"], dtype=np.float64)
        counts = np.asarray(arrays["cluster_counts"], dtype=np.int64)
        dist = np.asarray(arrays["cluster_dist"], dtype=np.float64)
        labels = np.asarray(arrays["cluster_labels"], dtype=np.int64)
        n_classes = len(self.classes_)
        if (
            centers.shape != (k, self.n_features_in_)
            or counts.shape != (k, n_classes)
            or dist.shape != (k, n_classes)
            or labels.shape != (k,)
            or labels.min() < 0
            or labels.max() >= n_classes
        ):
            raise ValueError("k-means arrays have inconsistent shapes or labels")
        self.n_clusters_ = k
        self.cluster_centers_ = centers
        self.cluster_counts_ = counts
        self.cluster_dist_ = dist
        self.cluster_labels_ = labels


def _nearest_center(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (squared Euclidean distance) for every row of ``X``."""
    d2 = (
        np.einsum("ij,ij->i", X, X)[:, None]
        - 2.0 * (X @ centers.T)
        + np.einsum("ij,ij->i", centers, centers)[None, :]
    )
    return np.argmin(d2, axis=1)


def _dist_and_labels(counts: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster dataset distribution and majority label; an empty cluster falls back to the prior."""
    totals = counts.sum(axis=1, keepdims=True)
    dist = np.where(totals > 0, counts / np.maximum(totals, 1), prior[None, :])
    return dist, np.argmax(dist, axis=1).astype(np.int64)
