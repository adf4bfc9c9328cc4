"""Leave-one-dataset-out (LODO) evaluation of the recommender against simple baselines (issue 6).

For every known dataset ``t`` of a portfolio, ``t`` is held out: a method may only use the other datasets
(their incumbents, their scores, their meta-features or fingerprints) to pick one of the *other* datasets'
incumbent configurations for ``t``. The pick's score on ``t`` is already in the performance matrix, so
nothing is retrained. A method's pick is a probability over those incumbents (a uniformly random pick,
or the best matches of many random fingerprint batches), so its score on ``t`` is an expectation.

Normalized regret on ``t`` is ``(oracle - score) / (oracle - worst)``: 0 for the best of the other
incumbents on ``t``, 1 for the worst (0 when all of them score the same).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metafeatures.errors import ConfigError
from metafeatures.evaluation import draw_batches
from metafeatures.matchers import get_matcher
from metafeatures.matchers.registry import matcher_class
from portfolio.selection import PerformanceMatrix

#: the baselines every evaluation reports, in report order
BASELINES: tuple[str, ...] = ("oracle", "single_best", "random", "metafeatures_knn")
DEFAULT_MATCHERS: tuple[str, ...] = ("kmeans", "mlp", "moments")
DEFAULT_BATCH_SIZES: tuple[int, ...] = (8, 64, 512)
#: with two known datasets, holding one out leaves a single candidate: every method would trivially tie
MIN_DATASETS = 3
#: a method beats single_best on a dataset only when its expected score is higher by more than this
BEAT_EPS = 1e-9

Picks = dict[str, float]  # incumbent (named by its dataset) -> probability of being recommended
Progress = Callable[[str], None]


def check_lodo_matrix(matrix: PerformanceMatrix) -> None:
    """Refuse a matrix LODO cannot use: rows must be the columns' incumbents, and at least MIN_DATASETS."""
    if set(matrix.configs) != set(matrix.datasets):
        raise ConfigError("performance_matrix", f"{len(matrix.configs)}x{len(matrix.datasets)}",
                          "leave-one-dataset-out needs one incumbent row per known dataset (rows named by the "
                          "datasets of the columns)")
    if len(matrix.datasets) < MIN_DATASETS:
        raise ConfigError("datasets", len(matrix.datasets),
                          f"leave-one-dataset-out needs a portfolio of at least {MIN_DATASETS} known datasets "
                          "(holding one out must leave a choice between two or more incumbents)")


def candidates(matrix: PerformanceMatrix, held_out: str) -> list[str]:
    """Incumbents a method may recommend for ``held_out``: every other dataset's, in matrix order."""
    return [c for c in matrix.configs if c != held_out]


def expected_score(picks: Mapping[str, float], matrix: PerformanceMatrix, dataset: str) -> float:
    """Score on ``dataset`` of a (possibly random) pick: probability-weighted matrix scores (NaN = failed)."""
    return float(sum(p * matrix.score(config, dataset) for config, p in picks.items()))


def normalized_regret(score: float, matrix: PerformanceMatrix, held_out: str) -> float:
    """``(oracle - score) / (oracle - worst)`` over the other incumbents' scores on ``held_out``."""
    scores = [matrix.score(c, held_out) for c in candidates(matrix, held_out)]
    best, worst = max(scores), min(scores)
    return 0.0 if best - worst < 1e-12 else (best - score) / (best - worst)


# ------------------------------------------------------------------------------------------ baselines


def oracle_picks(matrix: PerformanceMatrix, held_out: str) -> Picks:
    """The other incumbent that is best on ``held_out`` (knows the answer: a lower bound on regret)."""
    return {max(candidates(matrix, held_out), key=lambda c: matrix.score(c, held_out)): 1.0}


def single_best_picks(matrix: PerformanceMatrix, held_out: str) -> Picks:
    """The other incumbent with the best mean score over the other datasets: a one-size-fits-all default."""
    others = [d for d in matrix.datasets if d != held_out]
    return {max(candidates(matrix, held_out),
                key=lambda c: float(np.mean([matrix.score(c, d) for d in others]))): 1.0}


def random_picks(matrix: PerformanceMatrix, held_out: str) -> Picks:
    """Every other incumbent with equal probability."""
    names = candidates(matrix, held_out)
    return {c: 1.0 / len(names) for c in names}


def meta_features(summary: Mapping[str, Any]) -> np.ndarray:
    """Simple meta-features of a DatasetSummary (ZAP / auto-sklearn 1 style): log classes, log images,
    log mean resolution (geometric mean of height and width) and channels."""
    resolution = math.sqrt(float(summary["mean_height"]) * float(summary["mean_width"]))
    return np.array([math.log(float(summary["n_classes"])), math.log(float(summary["n_items"])),
                     math.log(max(resolution, 1.0)), float(summary["channels"])])


def knn_picks(features: Mapping[str, np.ndarray], held_out: str, others: Sequence[str]) -> Picks:
    """The other dataset nearest to ``held_out`` in meta-features standardised over the other datasets."""
    train = np.stack([features[d] for d in others])
    std = train.std(axis=0)  # centring would not change distances, so only the scale matters
    std[std < 1e-12] = 1.0  # a constant feature carries no information: leave it unscaled
    distances = np.linalg.norm((train - features[held_out]) / std, axis=1)
    return {others[int(np.argmin(distances))]: 1.0}


# ------------------------------------------------------------------------------------------ matchers


def matcher_picks(name: str, params: Mapping[str, Any], fingerprints: Mapping[str, np.ndarray], held_out: str,
                  batch_sizes: Sequence[int], n_batches: int, seed: int) -> dict[int, Picks]:
    """Refit matcher ``name`` on the other datasets' fingerprints; per batch size, how often each other
    dataset is the best match of a random batch of ``held_out``'s fingerprints."""
    others = [d for d in fingerprints if d != held_out]
    x = np.concatenate([fingerprints[d] for d in others])
    y = np.concatenate([np.repeat(d, len(fingerprints[d])) for d in others])
    matcher = get_matcher(name, **params).fit(x, y)
    out: dict[int, Picks] = {}
    for size in batch_sizes:
        rng = np.random.default_rng([seed, size, sorted(fingerprints).index(held_out)])
        batches, _ = draw_batches(fingerprints[held_out], size, n_batches, rng)
        counts = Counter(matcher.predict(batch) for batch in batches)
        out[size] = {match: count / n_batches for match, count in counts.most_common()}
    return out


# ------------------------------------------------------------------------------------------ the whole evaluation


@dataclass
class MethodResult:
    """One method's picks, expected scores and normalized regrets per held-out dataset."""

    picks: dict[str, Picks] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    regrets: dict[str, float] = field(default_factory=dict)

    @property
    def mean_regret(self) -> float:
        """Mean normalized regret over the held-out datasets."""
        return float(np.mean(list(self.regrets.values())))


@dataclass
class RecommenderEval:
    """Every method's LODO result; ``beats_single_best`` compares expected scores per dataset."""

    datasets: list[str]
    methods: dict[str, MethodResult]
    settings: dict[str, Any]

    def beats_single_best(self, method: str) -> float:
        """Fraction of held-out datasets where ``method`` scores higher than single_best."""
        ref = self.methods["single_best"].scores
        own = self.methods[method].scores
        return float(np.mean([own[d] > ref[d] + BEAT_EPS for d in self.datasets]))

    def to_json(self) -> dict[str, Any]:
        """``{"methods": {NAME: {"mean_regret", "beats_single_best", "per_dataset", ...}}, "datasets", ...}``."""
        methods = {name: {"mean_regret": round(r.mean_regret, 4),
                          "beats_single_best": round(self.beats_single_best(name), 4),
                          "per_dataset": {d: round(r.regrets[d], 4) for d in self.datasets},
                          "mean_score": round(float(np.mean(list(r.scores.values()))), 4),
                          "per_dataset_score": {d: round(r.scores[d], 4) for d in self.datasets},
                          "picks": {d: {c: round(p, 4) for c, p in r.picks[d].items()} for d in self.datasets}}
                   for name, r in self.methods.items()}
        return {"methods": methods, "datasets": self.datasets, "settings": self.settings}

    def table(self) -> str:
        """Plain-text summary: one row per method with mean regret, mean score and beats-single_best."""
        head = f"{'method':<18}{'mean regret':>12}{'mean score':>12}{'beats single_best':>19}"
        rows = [f"{name:<18}{r.mean_regret:>12.3f}{np.mean(list(r.scores.values())):>12.3f}"
                f"{self.beats_single_best(name):>19.2f}" for name, r in self.methods.items()]
        return "\n".join([head, "-" * len(head), *rows])

    def per_dataset_table(self) -> str:
        """Plain-text regrets: methods as rows, held-out datasets as columns."""
        width = max(10, *(len(d) + 2 for d in self.datasets))
        head = f"{'method':<18}" + "".join(f"{d:>{width}}" for d in self.datasets)
        rows = [f"{name:<18}" + "".join(f"{r.regrets[d]:>{width}.3f}" for d in self.datasets)
                for name, r in self.methods.items()]
        return "\n".join([head, "-" * len(head), *rows])


def _record(result: MethodResult, picks: Picks, matrix: PerformanceMatrix, held_out: str) -> None:
    """Store one held-out dataset's picks with their expected score and regret."""
    score = expected_score(picks, matrix, held_out)
    result.picks[held_out] = picks
    result.scores[held_out] = score
    result.regrets[held_out] = normalized_regret(score, matrix, held_out)


def evaluate_recommender(matrix: PerformanceMatrix, summaries: Mapping[str, Mapping[str, Any]],
                         fingerprints: Mapping[str, np.ndarray] | None = None,
                         matchers: Sequence[str] = DEFAULT_MATCHERS,
                         params: Mapping[str, Mapping[str, Any]] | None = None,
                         batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, n_batches: int = 20, seed: int = 0,
                         on_progress: Progress | None = None) -> RecommenderEval:
    """Hold out every known dataset in turn and score the baselines and each matcher at each batch size."""
    check_lodo_matrix(matrix)
    datasets = list(matrix.datasets)
    missing = sorted(set(datasets) - set(summaries))
    if missing:
        raise ConfigError("summaries", missing, "every known dataset needs a summary (for its meta-features)")
    for name in matchers:
        matcher_class(name)  # an unknown name fails here, before any work
    if matchers:
        if fingerprints is None or sorted(set(datasets) - set(fingerprints)):
            raise ConfigError("fingerprints", sorted(set(datasets) - set(fingerprints or {})),
                              "the matchers need fingerprints of every known dataset")
        if n_batches < 1 or not batch_sizes or min(batch_sizes) < 1:
            raise ConfigError("batches", (n_batches, list(batch_sizes)), "need n_batches >= 1 and batch sizes >= 1")
    methods: dict[str, MethodResult] = {name: MethodResult() for name in BASELINES}
    methods.update({f"{m}@{b}": MethodResult() for m in matchers for b in batch_sizes})
    features = {d: meta_features(summaries[d]) for d in datasets}
    fps = {d: fingerprints[d] for d in datasets} if matchers and fingerprints is not None else {}
    for held_out in datasets:
        others = candidates(matrix, held_out)
        _record(methods["oracle"], oracle_picks(matrix, held_out), matrix, held_out)
        _record(methods["single_best"], single_best_picks(matrix, held_out), matrix, held_out)
        _record(methods["random"], random_picks(matrix, held_out), matrix, held_out)
        _record(methods["metafeatures_knn"], knn_picks(features, held_out, others), matrix, held_out)
        for name in matchers:
            if on_progress is not None:
                on_progress(f"{name} without {held_out}")
            per_size = matcher_picks(name, (params or {}).get(name, {}), fps, held_out, batch_sizes, n_batches, seed)
            for size, picks in per_size.items():
                _record(methods[f"{name}@{size}"], picks, matrix, held_out)
    settings = {"matchers": list(matchers), "batch_sizes": list(batch_sizes), "n_batches": n_batches, "seed": seed,
                "params": {m: dict((params or {}).get(m, {})) for m in matchers}}
    return RecommenderEval(datasets=datasets, methods=methods, settings=settings)


def plot_regret(result: RecommenderEval, path: Path, title: str = "") -> Path:
    """Bar chart of mean normalized regret per method, with each held-out dataset's regret as a dot."""
    from metafeatures.figures import new_axes, save_figure

    names = list(result.methods)
    fig, ax = new_axes(title or f"leave-one-dataset-out over {len(result.datasets)} datasets",
                       "method", "normalized regret (0 = oracle, 1 = worst)")
    fig.set_size_inches(max(6.0, 0.45 * len(names) + 1.5), 4.5)
    colours = ["tab:gray" if n in BASELINES else "tab:blue" for n in names]
    ax.bar(range(len(names)), [result.methods[n].mean_regret for n in names], color=colours, alpha=0.6)
    markers = "ovs^Dp*hX"
    for k, dataset in enumerate(result.datasets):
        offsets = np.linspace(-0.25, 0.25, len(result.datasets))[k]
        ax.scatter([i + offsets for i in range(len(names))], [result.methods[n].regrets[dataset] for n in names],
                   s=12, marker=markers[k % len(markers)], label=dataset, zorder=3)
    ax.set_xticks(range(len(names)), labels=names, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="held out", title_fontsize=6)
    return save_figure(fig, path)
