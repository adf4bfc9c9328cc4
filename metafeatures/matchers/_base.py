"""Shared base of the dataset matchers: input validation, label encoding, standardisation, batch ranking.

A matcher is fitted on per-image fingerprints ``X`` (n_samples, n_features) labelled with the name of the
known dataset each image comes from, and then scores a whole *batch* of fingerprints from one unknown
dataset: ``predict(batch)`` returns one dataset name, ``rank(batch)`` every known dataset with a score.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets

from metafeatures.errors import NotFittedMatcherError

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - scikit-learn 1.5
    _sk_validate_data = None


class MatcherNotFittedError(NotFittedMatcherError, NotFittedError):
    """Raised when a matcher is used before ``fit``; both metarec and scikit-learn callers can catch it."""


def _validate_data(estimator: BaseEstimator, X: Any, y: Any = None, **kwargs: Any) -> Any:
    """Run scikit-learn's ``validate_data`` (1.6+) or the older ``_validate_data`` method."""
    if _sk_validate_data is not None:
        if y is None:
            return _sk_validate_data(estimator, X, **kwargs)
        return _sk_validate_data(estimator, X, y, **kwargs)
    if y is None:  # pragma: no cover - scikit-learn 1.5
        return estimator._validate_data(X, **kwargs)
    return estimator._validate_data(X, y, **kwargs)  # pragma: no cover


def check_int_param(name: str, value: Any, low: int) -> None:
    """Raise ValueError unless ``value`` is an int (not bool) that is at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def check_float_param(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> None:
    """Raise ValueError unless ``value`` is a real number in [low, high] (or (low, high] if ``low_open``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(np.asarray(value))
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be a number in {bracket}{low}, {high}], got {value!r}")


def seed_from(random_state: Any) -> int:
    """Turn a scikit-learn style ``random_state`` (None, int, RandomState) into one int seed."""
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


def _centroids(X: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class mean and variance of every feature (variances floored so a constant feature stays finite)."""
    centroids = np.stack([X[y == c].mean(axis=0) for c in range(n_classes)])
    variances = np.stack([X[y == c].var(axis=0) for c in range(n_classes)])
    return centroids, np.maximum(variances, _var_floor(variances))


def _var_floor(variances: np.ndarray) -> float:
    """The smallest variance a feature is given: a thousandth of the median one."""
    return max(float(np.median(variances)) * 1e-3, 1e-12)


class BaseMatcher(BaseEstimator):
    """Base of all matchers: validates inputs, encodes dataset names, standardises, ranks a batch.

    Subclasses implement ``_fit(X, y, n_classes)`` on standardised float64 features and integer labels,
    ``_batch_scores(X) -> (scores, tiebreak)`` for one standardised batch, and the ``_get_state`` /
    ``_set_state`` hooks used by :mod:`metafeatures.matchers.io`.
    """

    #: learned attributes that must exist once fitted (besides ``classes_`` and ``n_features_in_``)
    _fitted_attrs: ClassVar[tuple[str, ...]] = ()

    standardize: bool

    def __sklearn_tags__(self) -> Any:
        """scikit-learn tags: ``fit`` needs ``y`` (dataset names).

        The estimator type is deliberately left unset (not "classifier"): ``predict`` names one dataset per
        *batch*, so scikit-learn tools that score per-sample predictions (``cross_val_score``,
        ``ClassifierMixin.score``) must not treat a matcher as an ordinary classifier.
        """
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    # ------------------------------------------------------------------ hooks for subclasses
    def _check_params(self) -> None:
        """Validate hyper-parameters (called at the start of ``fit``); raise ValueError when invalid."""
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise ValueError(f"standardize must be a bool, got {self.standardize!r}")

    def _fit(self, X: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        """Learn the model from standardised features ``X`` and label indices ``y`` (0..n_classes-1)."""
        raise NotImplementedError

    def _batch_scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, tiebreak) over ``classes_`` for one standardised batch ``X``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any) -> BaseMatcher:
        """Learn to tell the known datasets apart from per-image fingerprints ``X`` labelled by ``y``."""
        self._check_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None "
                "(y names the known dataset of every fingerprint)"
            )
        X, y = _validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2, reset=True)
        check_classification_targets(y)
        labels = np.asarray([str(v) for v in y])
        classes, y_idx = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                "a matcher needs fingerprints from at least 2 distinct datasets (classes) to fit, "
                f"got {len(classes)}: {classes.tolist()!r}"
            )
        if self.standardize:
            scaler = StandardScaler().fit(X)
            mean, scale = scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64)
        else:
            mean = scale = None
        self.scaler_mean_ = mean
        self.scaler_scale_ = scale
        self._fit(self._standardize(X), y_idx.astype(np.int64), len(classes))
        self.centroids_, self.class_var_ = _centroids(X, y_idx, len(classes))
        self.classes_ = classes
        return self

    def _standardize(self, X: np.ndarray) -> np.ndarray:
        """Apply the training-set standardisation (if any) to float64 features."""
        if self.scaler_mean_ is None:
            return X
        return (X - self.scaler_mean_) / self.scaler_scale_

    # ------------------------------------------------------------------ fitted-ness
    def __sklearn_is_fitted__(self) -> bool:
        """Tell scikit-learn's ``check_is_fitted`` whether ``fit`` has completed."""
        attrs = ("classes_", "n_features_in_", "scaler_mean_", "centroids_", "class_var_", *self._fitted_attrs)
        return all(hasattr(self, a) for a in attrs)

    def _check_fitted(self) -> None:
        """Raise :class:`MatcherNotFittedError` if the matcher has not been fitted."""
        if not self.__sklearn_is_fitted__():
            raise MatcherNotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(features, dataset_labels) first"
            )

    # ------------------------------------------------------------------ batch scoring
    def _raw_batch(self, batch: Any) -> np.ndarray:
        """Validate a batch (2-D, or one 1-D fingerprint) and check its width; float64, not standardised."""
        self._check_fitted()
        if not hasattr(batch, "shape"):
            batch = np.asarray(batch)
        if getattr(batch, "ndim", 2) == 1:
            batch = np.asarray(batch).reshape(1, -1)
        return _validate_data(self, batch, dtype=np.float64, reset=False)

    def _prepare_batch(self, batch: Any) -> np.ndarray:
        """Validate a batch (2-D, or one 1-D fingerprint), check its width and standardise it."""
        return self._standardize(self._raw_batch(batch))

    def predict_proba_batch(self, batch: Any) -> np.ndarray:
        """Score every known dataset (order of ``classes_``) for one batch; scores are >= 0 and sum to 1."""
        return self._batch_scores(self._prepare_batch(batch))[0]

    def rank(self, batch: Any) -> list[tuple[str, float]]:
        """All known datasets for one batch as (name, score), best first; scores are >= 0 and sum to 1."""
        scores, tiebreak = self._batch_scores(self._prepare_batch(batch))
        order = np.lexsort((np.arange(len(scores)), -tiebreak, -scores))
        return [(str(self.classes_[i]), float(scores[i])) for i in order]

    def predict(self, batch: Any) -> str:
        """The single known dataset a batch of fingerprints most likely comes from."""
        return self.rank(batch)[0][0]

    def distance(self, batch: Any) -> np.ndarray:
        """Absolute distance of a batch to every known dataset (order of ``classes_``), whatever the matcher.

        ``rank`` scores always sum to 1, so they cannot say "none of these"; this can. It is the Bhattacharyya
        distance between the batch and each dataset, each seen as a Gaussian with independent features,
        averaged over features: 0 for the same mean and spread, growing with the gap between the means (in
        units of the two spreads) and with the ratio of the spreads. A single fingerprint has no spread of its
        own and is compared by its mean alone. Novelty is calibrated on it (:mod:`portfolio.novelty`).
        """
        X = self._raw_batch(batch)
        mean, var = X.mean(axis=0), self.class_var_
        if len(X) < 2:
            return (0.125 * (mean - self.centroids_) ** 2 / var).mean(axis=1)
        own = np.maximum(X.var(axis=0), _var_floor(var))[None, :]
        spread_term = 0.25 * np.log(0.25 * (own / var + var / own + 2.0))
        return (spread_term + 0.25 * (mean - self.centroids_) ** 2 / (own + var)).mean(axis=1)

    # ------------------------------------------------------------------ persistence hooks
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state as (JSON-able dict, named arrays) for :func:`~metafeatures.matchers.save_matcher`."""
        self._check_fitted()
        meta: dict[str, Any] = {
            "classes_": [str(c) for c in self.classes_],
            "n_features_in_": int(self.n_features_in_),
            "standardized": self.scaler_mean_ is not None,
        }
        arrays: dict[str, np.ndarray] = {"centroids": self.centroids_, "class_var": self.class_var_}
        if self.scaler_mean_ is not None:
            arrays["scaler_mean"] = self.scaler_mean_
            arrays["scaler_scale"] = self.scaler_scale_
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore the learned state written by :meth:`_get_state` (raises KeyError/ValueError if bad)."""
        classes = np.asarray([str(c) for c in meta["classes_"]])
        n_features = int(meta["n_features_in_"])
        if len(classes) < 2 or n_features < 1:
            raise ValueError(f"bad classes_ ({len(classes)}) or n_features_in_ ({n_features})")
        mean: np.ndarray | None
        scale: np.ndarray | None
        if meta["standardized"]:
            mean = np.asarray(arrays["scaler_mean"], dtype=np.float64)
            scale = np.asarray(arrays["scaler_scale"], dtype=np.float64)
            if mean.shape != (n_features,) or scale.shape != (n_features,):
                raise ValueError("scaler arrays do not match n_features_in_")
        else:
            mean = scale = None
        centroids = np.asarray(arrays["centroids"], dtype=np.float64)
        class_var = np.asarray(arrays["class_var"], dtype=np.float64)
        shape = (len(classes), n_features)
        if centroids.shape != shape or class_var.shape != shape or (class_var <= 0).any():
            raise ValueError("centroid arrays do not match classes_ and n_features_in_")
        self.classes_ = classes
        self.n_features_in_ = n_features
        self.scaler_mean_ = mean
        self.scaler_scale_ = scale
        self.centroids_ = centroids
        self.class_var_ = class_var
