"""Tests of the dataset matchers on synthetic fingerprints: accuracy, ranking, errors, I/O, registry."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator

import numpy as np
import pytest
import scipy.stats
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from metafeatures.errors import ArtifactError, NotFittedMatcherError, SpecMismatchError, UnknownMatcherError
from metafeatures.matchers import (
    MATCHER_FORMAT_VERSION,
    KMeansVoteMatcher,
    MLPVoteMatcher,
    MomentMLPMatcher,
    get_matcher,
    list_matchers,
    load_matcher,
    register_matcher,
    save_matcher,
)
from metafeatures.matchers import registry as registry_module
from metafeatures.matchers.moments import batch_statistics

N_DATASETS, DIM = 4, 32
NAMES = [f"ds{i}" for i in range(N_DATASETS)]
SPEC = {"backbone": "resnet18", "layer": "avgpool", "dim": DIM, "image_size": [224, 224]}

#: small settings that keep every fit well under a second on one CPU thread
FAST_PARAMS: dict[str, dict] = {
    "kmeans": {"n_clusters": 12, "n_init": 3},
    "mlp": {"hidden": 64, "max_epochs": 8},
    "moments": {"hidden": 64, "max_epochs": 30},
}
MATCHERS = sorted(FAST_PARAMS)


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    """OpenMP/BLAS on one thread: on the 2-vCPU test VMs two threads are far slower for these sizes."""
    with threadpool_limits(limits=1):
        yield


def gaussian_datasets(
    n_per: int, seed: int, stds: list[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``N_DATASETS`` Gaussian "datasets": distinct means (fixed), or one mean and the given stds."""
    means = np.random.default_rng(1234).normal(scale=0.6, size=(N_DATASETS, DIM))
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(N_DATASETS):
        if stds is None:
            parts.append(means[i] + rng.normal(size=(n_per, DIM)))
        else:
            parts.append(rng.normal(scale=stds[i], size=(n_per, DIM // 2)))
    return np.concatenate(parts), np.repeat(NAMES, n_per)


def batches(X: np.ndarray, y: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, str]]:
    """Consecutive disjoint batches of ``size`` fingerprints from each dataset, with the true name."""
    for name in NAMES:
        rows = X[y == name]
        for start in range(0, len(rows) - size + 1, size):
            yield rows[start : start + size], name


def batch_accuracy(matcher: object, X: np.ndarray, y: np.ndarray, size: int) -> float:
    """Share of held-out batches the matcher names correctly."""
    hits = [matcher.predict(b) == name for b, name in batches(X, y, size)]
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def train_data() -> tuple[np.ndarray, np.ndarray]:
    return gaussian_datasets(300, seed=0)


@pytest.fixture(scope="module")
def test_data() -> tuple[np.ndarray, np.ndarray]:
    return gaussian_datasets(160, seed=1)


@pytest.fixture(scope="module")
def fitted(train_data) -> dict[str, object]:
    X, y = train_data
    return {name: get_matcher(name, **FAST_PARAMS[name]).fit(X, y) for name in MATCHERS}


# ---------------------------------------------------------------- accuracy and the ranking contract


@pytest.mark.parametrize("name", MATCHERS)
def test_identifies_held_out_batches(fitted, test_data, name):
    X, y = test_data
    assert batch_accuracy(fitted[name], X, y, 16) >= 0.95


@pytest.mark.parametrize("name", MATCHERS)
def test_rank_is_a_sorted_distribution_over_all_datasets(fitted, test_data, name):
    matcher = fitted[name]
    X, _ = test_data
    assert list(matcher.classes_) == NAMES
    for size in (1, 2, 5, 16, 64):
        batch = X[100 : 100 + size]
        ranking = matcher.rank(batch)
        names = [n for n, _ in ranking]
        scores = np.array([s for _, s in ranking])
        assert sorted(names) == NAMES
        assert all(isinstance(n, str) and isinstance(s, float) for n, s in ranking)
        assert np.all(scores >= 0) and np.all(np.isfinite(scores))
        assert scores.sum() == pytest.approx(1.0, abs=1e-9)
        assert np.all(np.diff(scores) <= 0)
        assert matcher.predict(batch) == names[0]
        proba = matcher.predict_proba_batch(batch)
        assert proba.shape == (N_DATASETS,)
        assert dict(ranking) == pytest.approx(dict(zip(NAMES, proba.tolist(), strict=True)))


@pytest.mark.parametrize("name", MATCHERS)
def test_one_dimensional_input_is_a_batch_of_one(fitted, test_data, name):
    x = test_data[0][7]
    assert fitted[name].rank(x) == fitted[name].rank(x[None, :])


@pytest.mark.parametrize("name", MATCHERS)
def test_answer_does_not_depend_on_sample_order(fitted, test_data, name):
    batch = test_data[0][:24]
    shuffled = batch[np.random.default_rng(0).permutation(len(batch))]
    ranked, ranked_shuffled = fitted[name].rank(batch), fitted[name].rank(shuffled)
    assert [n for n, _ in ranked_shuffled] == [n for n, _ in ranked]
    assert [s for _, s in ranked_shuffled] == pytest.approx([s for _, s in ranked], rel=1e-5, abs=1e-9)


def test_vote_scores_are_vote_shares_and_ties_are_ordered(fitted, test_data):
    km = fitted["kmeans"]
    batch = test_data[0][:10]
    Xs = (batch - km.scaler_mean_) / km.scaler_scale_
    d2 = ((Xs[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)
    votes = np.bincount(km.cluster_labels_[d2.argmin(1)], minlength=N_DATASETS) / len(batch)
    assert km.predict_proba_batch(batch) == pytest.approx(votes)
    # a batch of one: one dataset gets the vote, the others (tied at 0) follow the cluster distribution
    ranking = km.rank(batch[:1])
    dist = km.cluster_dist_[d2[0].argmin()]
    zero_voted = [n for n, s in ranking if s == 0.0]
    expected = sorted(zero_voted, key=lambda n: (-dist[NAMES.index(n)], n))
    assert zero_voted == expected
    assert ranking[0][1] == 1.0


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("name", MATCHERS)
def test_unfitted_matcher_raises(test_data, name):
    matcher = get_matcher(name)
    for method in (matcher.predict, matcher.rank, matcher.predict_proba_batch):
        with pytest.raises(NotFittedMatcherError, match="not fitted"):
            method(test_data[0][:4])
    with pytest.raises(NotFittedError):
        matcher.predict(test_data[0][:4])
    with pytest.raises(NotFittedMatcherError):
        save_matcher(matcher, "unused.npz", SPEC)


@pytest.mark.parametrize("name", MATCHERS)
def test_wrong_feature_count_raises(fitted, name):
    with pytest.raises(ValueError, match="features"):
        fitted[name].predict(np.zeros((4, DIM + 1)))
    with pytest.raises(ValueError, match="features"):
        fitted[name].rank(np.zeros(DIM - 1))


@pytest.mark.parametrize("name", MATCHERS)
def test_bad_fit_input_raises(train_data, name):
    X, y = train_data
    matcher = get_matcher(name, **FAST_PARAMS[name])
    with pytest.raises(ValueError, match="at least 2 distinct datasets"):
        matcher.fit(X[:50], np.full(50, "only"))
    with pytest.raises(ValueError):
        matcher.fit(X[:50], y[:49])
    with pytest.raises(ValueError):
        matcher.fit(X[:, 0], y)
    X_nan = X.copy()
    X_nan[3, 3] = np.nan
    with pytest.raises(ValueError):
        matcher.fit(X_nan, y)
    with pytest.raises(ValueError, match="requires y"):
        matcher.fit(X, None)
    assert not hasattr(matcher, "classes_")


@pytest.mark.parametrize(
    "name, params",
    [
        ("kmeans", {"n_clusters": 0}),
        ("mlp", {"lr": 0.0}),
        ("mlp", {"dropout": 1.0}),
        ("moments", {"p": 0.6}),
        ("moments", {"set_size": 0}),
        (
            "moments",
            {
                "use_mean": False,
                "use_median": False,
                "use_std": False,
                "use_skew": False,
                "use_kurt": False,
                "p": 0.0,
            },
        ),
    ],
)
def test_bad_hyper_parameters_raise_at_fit(train_data, name, params):
    with pytest.raises(ValueError):
        get_matcher(name, **params).fit(*train_data)


def test_rejects_nan_in_batch(fitted):
    batch = np.zeros((3, DIM))
    batch[1, 2] = np.inf
    with pytest.raises(ValueError):
        fitted["kmeans"].predict(batch)


# ---------------------------------------------------------------- persistence


@pytest.mark.parametrize("name", MATCHERS)
def test_save_load_round_trip_reproduces_rank(fitted, test_data, tmp_path, name):
    matcher = fitted[name]
    path = save_matcher(matcher, tmp_path / f"{name}.npz", SPEC)
    loaded = load_matcher(path, expected_spec=dict(SPEC, image_size=(224, 224)))
    assert type(loaded) is type(matcher)
    assert loaded.get_params() == matcher.get_params()
    assert list(loaded.classes_) == list(matcher.classes_)
    assert loaded.n_features_in_ == DIM
    X, _ = test_data
    for start, size in ((0, 1), (5, 16), (200, 64)):
        batch = X[start : start + size]
        assert loaded.rank(batch) == matcher.rank(batch)


def test_saved_file_is_pickle_free_npz_with_meta(fitted, tmp_path):
    path = save_matcher(fitted["moments"], tmp_path / "m.npz", SPEC)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["__meta__"]))
        assert all(npz[k].dtype != object for k in npz.files)
    assert meta["format_version"] == MATCHER_FORMAT_VERSION == 2
    assert meta["matcher"] == "moments"
    assert meta["classes_"] == NAMES and meta["n_features_in_"] == DIM
    assert meta["fingerprint_spec"] == SPEC
    assert meta["params"]["p"] == 0.1
    for key in ("metarec_version", "sklearn_version", "torch_version", "created_at"):
        assert isinstance(meta[key], str) and meta[key]


def test_load_with_other_spec_raises(fitted, tmp_path):
    path = save_matcher(fitted["kmeans"], tmp_path / "k.npz", SPEC)
    with pytest.raises(SpecMismatchError, match="dim") as info:
        load_matcher(path, expected_spec=dict(SPEC, dim=512))
    assert info.value.got == SPEC
    assert load_matcher(path).rank(np.zeros(DIM)) == fitted["kmeans"].rank(np.zeros(DIM))


def _rewrite(src, dst, edit_meta=None, drop_array=None) -> None:
    """Copy a saved matcher, editing its meta dict or dropping one array."""
    with np.load(src, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files}
    meta = json.loads(str(entries.pop("__meta__")))
    if edit_meta:
        edit_meta(meta)
    if drop_array:
        entries.pop(drop_array)
    np.savez(dst, __meta__=np.array(json.dumps(meta)), **entries)


def test_tampered_or_broken_files_raise_artifact_error(fitted, tmp_path):
    good = save_matcher(fitted["mlp"], tmp_path / "good.npz", SPEC)
    cases = {
        "version.npz": dict(edit_meta=lambda m: m.update(format_version=1)),
        "nocentroids.npz": dict(drop_array="centroids"),
        "nokey.npz": dict(edit_meta=lambda m: m.pop("classes_")),
        "noname.npz": dict(edit_meta=lambda m: m.update(matcher="nonexistent")),
        "noarray.npz": dict(drop_array="net.0.weight"),
        "badparams.npz": dict(edit_meta=lambda m: m["params"].update(hidden=65)),
    }
    for fname, kw in cases.items():
        _rewrite(good, tmp_path / fname, **kw)
        with pytest.raises(ArtifactError, match=fname):
            load_matcher(tmp_path / fname)
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file")
    with pytest.raises(ArtifactError, match="garbage.npz"):
        load_matcher(tmp_path / "garbage.npz")
    np.savez(tmp_path / "nometa.npz", x=np.zeros(3))
    with pytest.raises(ArtifactError, match="nometa.npz"):
        load_matcher(tmp_path / "nometa.npz")
    with pytest.raises(ArtifactError, match="version"):
        _rewrite(good, tmp_path / "v0.npz", edit_meta=lambda m: m.update(format_version="1"))
        load_matcher(tmp_path / "v0.npz")


@pytest.mark.parametrize("name", MATCHERS)
def test_pickle_and_clone(fitted, test_data, name):
    matcher = fitted[name]
    batch = test_data[0][:16]
    assert pickle.loads(pickle.dumps(matcher)).rank(batch) == matcher.rank(batch)
    fresh = clone(matcher)
    assert fresh.get_params() == matcher.get_params()
    assert not hasattr(fresh, "classes_")


# ---------------------------------------------------------------- registry


def test_registry_lists_and_builds_matchers():
    assert list_matchers() == ["kmeans", "mlp", "moments"]
    assert isinstance(get_matcher("kmeans"), KMeansVoteMatcher)
    assert isinstance(get_matcher("mlp"), MLPVoteMatcher)
    moments = get_matcher("moments", p=0.2, set_size=16)
    assert isinstance(moments, MomentMLPMatcher)
    assert moments.get_params()["p"] == 0.2 and moments.set_size == 16


def test_registry_rejects_unknown_and_duplicate_names(monkeypatch):
    with pytest.raises(UnknownMatcherError, match="kmeans, mlp, moments") as info:
        get_matcher("knn")
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match="already registered"):
        register_matcher("kmeans", MLPVoteMatcher)
    with pytest.raises(TypeError):
        register_matcher("dict", dict)
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))

    class Custom(KMeansVoteMatcher):
        """A user-defined matcher."""

    register_matcher("custom", Custom)
    assert "custom" in list_matchers()
    assert isinstance(get_matcher("custom", n_clusters=3), Custom)


# ---------------------------------------------------------------- determinism and side effects


@pytest.mark.parametrize("name", MATCHERS)
def test_same_random_state_gives_same_rank(fitted, train_data, test_data, name):
    again = get_matcher(name, **FAST_PARAMS[name]).fit(*train_data)
    for batch in (test_data[0][:1], test_data[0][40:56], test_data[0][300:364]):
        assert again.rank(batch) == fitted[name].rank(batch)


def test_fit_leaves_global_torch_state_alone(train_data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    MLPVoteMatcher(hidden=8, max_epochs=1).fit(*train_data)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


# ---------------------------------------------------------------- the moments matcher


def test_batch_statistics_match_numpy_and_scipy():
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, size=(2, 37, 5)).astype(np.float32)
    stats = ("mean", "median", "std", "var", "skew", "kurt", "q_low", "q_high")
    out = batch_statistics(x, stats, 0.1).reshape(2, len(stats), 5)
    expected = np.stack(
        [
            x.mean(1),
            np.median(x, 1),
            x.std(1),
            x.var(1),
            scipy.stats.skew(x, axis=1),
            scipy.stats.kurtosis(x, axis=1),
            np.quantile(x, 0.1, axis=1),
            np.quantile(x, 0.9, axis=1),
        ],
        axis=1,
    )
    np.testing.assert_allclose(out, expected, rtol=2e-4, atol=2e-5)
    assert batch_statistics(x, ("std", "mean"), 0.0).shape == (2, 10)


def test_batch_statistics_of_one_sample_are_finite():
    x = np.random.default_rng(0).normal(size=(3, 1, 6)).astype(np.float32)
    stats = ("mean", "median", "std", "var", "skew", "kurt", "q_low", "q_high")
    out = batch_statistics(x, stats, 0.25).reshape(3, len(stats), 6)
    assert np.all(np.isfinite(out))
    for i in (0, 1, 6, 7):  # mean, median and quantiles of one sample are the sample
        np.testing.assert_array_equal(out[:, i], x[:, 0])
    assert np.all(out[:, 2:6] == 0)  # std, var, skew, kurt
    constant = np.ones((1, 8, 4), dtype=np.float32) * 3.7
    assert np.all(batch_statistics(constant, ("skew", "kurt"), 0.0) == 0)


def test_moments_matcher_at_batch_size_one(fitted, test_data):
    matcher = fitted["moments"]
    ranking = matcher.rank(test_data[0][0])
    scores = np.array([s for _, s in ranking])
    assert np.all(np.isfinite(scores)) and scores.sum() == pytest.approx(1.0)
    assert matcher.stat_mean_.shape == (len(matcher.statistics) * DIM,)
    assert matcher.statistics == ("mean", "median", "std", "skew", "kurt", "q_low", "q_high")


def test_moments_beats_vote_when_datasets_differ_only_in_spread():
    stds = [1.0, 1.2, 1.45, 1.75]  # same mean: single fingerprints overlap heavily
    X, y = gaussian_datasets(2000, seed=5, stds=stds)
    X_test, y_test = gaussian_datasets(1280, seed=6, stds=stds)
    moments = MomentMLPMatcher(hidden=64, max_epochs=20, sets_per_dataset=512).fit(X, y)
    kmeans = KMeansVoteMatcher(n_init=3).fit(X, y)
    acc_moments = batch_accuracy(moments, X_test, y_test, 64)
    acc_kmeans = batch_accuracy(kmeans, X_test, y_test, 64)
    assert acc_moments >= 0.9
    assert acc_moments >= acc_kmeans + 0.4, (acc_moments, acc_kmeans)
