"""The leave-one-out harness on a hand-made 4×4 performance matrix whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metafeatures.errors import ConfigError, UnknownMatcherError
from portfolio.candidates import Candidate
from portfolio.evaluation import (
    BASELINES,
    META_K_GRID,
    MethodResult,
    Problem,
    collect_evidence,
    evaluate_recommender,
    knn_column,
    meta_features,
    metafeature_evidence,
    plot_regret,
)
from portfolio.performance import PerformanceData
from portfolio.selection import PerformanceMatrix

NAMES = ("A", "B", "C", "D")
# rows: incumbent of A..D; columns: datasets A..D
SCORES = np.array([[0.9, 0.2, 0.6, 0.1],
                   [0.5, 0.8, 0.3, 0.4],
                   [0.4, 0.7, 0.9, 0.8],
                   [0.3, 0.6, 0.5, 0.9]])
MATRIX = PerformanceMatrix(configs=NAMES, datasets=NAMES, scores=SCORES)
DATA = PerformanceData(matrix=MATRIX)
PROBLEM = Problem.build(DATA)


def normalized_regret(score: float, matrix: PerformanceMatrix, held_out: str) -> float:
    """Regret on ``held_out`` among the other datasets' incumbents (a held-out dataset's own is never allowed)."""
    problem = Problem.build(PerformanceData(matrix=matrix))
    target = matrix.datasets.index(held_out)
    return problem.regret(score, target, problem.rows({target}))

# Worked by hand. Holding out t leaves the other three incumbents; regret = (oracle - score) / (oracle - worst).
#   A: others score B .5, C .4, D .3 -> oracle B. Means over B,C,D columns: B .5, C .8, D .667 -> single_best C
#      (.4, regret .5); random .4 -> .5
#   B: A .2, C .7, D .6 -> oracle C. Means over A,C,D: A .533, C .7, D .567 -> C (regret 0); random .5 -> .4
#   C: A .6, B .3, D .5 -> oracle A. Means over A,B,D: A .4, B .567, D .6 -> D (.5, regret 1/3); random .4667 -> 4/9
#   D: A .1, B .4, C .8 -> oracle C. Means over A,B,C: A .567, B .533, C .667 -> C (regret 0); random .4333 -> 11/21
ORACLE = {"A": "B", "B": "C", "C": "A", "D": "C"}
SINGLE_BEST = {"A": "C", "B": "C", "C": "D", "D": "C"}
SINGLE_BEST_REGRET = {"A": 0.5, "B": 0.0, "C": 1 / 3, "D": 0.0}
RANDOM_REGRET = {"A": 0.5, "B": 0.4, "C": 4 / 9, "D": 11 / 21}

# meta-features: A and C are small grey images with 10 classes, B and D large colour images with 2-3 classes
SUMMARIES = {
    "A": {"n_classes": 10, "n_items": 1000, "mean_height": 28, "mean_width": 28, "channels": 1},
    "B": {"n_classes": 2, "n_items": 100, "mean_height": 224, "mean_width": 224, "channels": 3},
    "C": {"n_classes": 10, "n_items": 1200, "mean_height": 32, "mean_width": 32, "channels": 1},
    "D": {"n_classes": 3, "n_items": 150, "mean_height": 200, "mean_width": 180, "channels": 3},
}
# nearest by meta-features: A<->C, B<->D; their scores: A gets C's .4, B gets D's .6, C gets A's .6, D gets B's .4
KNN_REGRET = {"A": 0.5, "B": 0.2, "C": 0.0, "D": 4 / 7}


def fingerprints(pairs: dict[str, str], n: int = 60, dim: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Gaussian fingerprints: each dataset sits 0.5 away from its partner in ``pairs`` and 12 from the rest."""
    rng = np.random.default_rng(seed)
    centres: dict[str, np.ndarray] = {}
    for k, (a, b) in enumerate(pairs.items()):
        centre = np.zeros(dim)
        centre[k] = 12.0
        centres[a], centres[b] = centre, centre + 0.5 * np.eye(dim)[-1]
    return {name: centres[name] + 0.3 * rng.standard_normal((n, dim)) for name in NAMES}


SMALL = {"kmeans": {"n_clusters": 4, "n_init": 2}, "mlp": {"hidden": 16, "max_epochs": 20, "lr": 0.01},
         "moments": {"hidden": 16, "max_epochs": 30, "sets_per_dataset": 32, "lr": 0.01}}


def test_regret_is_zero_for_the_oracle_one_for_the_worst_and_linear_between():
    assert normalized_regret(0.5, MATRIX, "A") == 0.0  # B's score on A, the best of the others
    assert normalized_regret(0.3, MATRIX, "A") == pytest.approx(1.0)  # D's, the worst
    assert normalized_regret(0.35, MATRIX, "A") == pytest.approx(0.75)
    # A's own incumbent (0.9 on A) is not a candidate: it would be a regret below zero
    assert normalized_regret(0.9, MATRIX, "A") == pytest.approx(-2.0)


def test_regret_is_zero_when_every_other_incumbent_ties():
    flat = PerformanceMatrix(configs=NAMES[:3], datasets=NAMES[:3],
                             scores=np.array([[0.9, 0.4, 0.4], [0.5, 0.9, 0.4], [0.5, 0.4, 0.9]]))
    assert normalized_regret(0.5, flat, "A") == 0.0


def test_expected_score_weights_the_picks_and_counts_a_failure_as_minus_one():
    result = MethodResult()
    result.record(PROBLEM, 0, [1, 2, 3], [1, 3])  # half B (.5 on A), half D (.3 on A)
    assert result.scores["A"] == pytest.approx(0.4) and result.picks["A"] == {"B": 0.5, "D": 0.5}
    failed = PerformanceMatrix(configs=NAMES[:3], datasets=NAMES[:3],
                               scores=np.array([[0.9, 0.4, 0.4], [np.nan, 0.9, 0.4], [0.5, 0.4, 0.9]]))
    result.record(Problem.build(PerformanceData(matrix=failed)), 0, [1, 2], [1])
    assert result.scores["A"] == -1.0


def meta_methods(policies: tuple[str, ...] = ("incumbent", "neighbors", "reduced")) -> list[str]:
    """The methods the meta-feature neighbours add for ``policies`` (single_best is a baseline already)."""
    return [f"{p}/metafeatures" for p in policies]


def test_baselines_on_the_hand_made_matrix():
    result = evaluate_recommender(DATA, SUMMARIES, matchers=())
    assert list(result.methods) == [*BASELINES, *meta_methods()]
    for t in NAMES:
        assert result.methods["oracle"].picks[t] == {ORACLE[t]: 1.0}
        assert result.methods["oracle"].regrets[t] == 0.0
        assert result.methods["single_best"].picks[t] == {SINGLE_BEST[t]: 1.0}
        assert result.methods["single_best"].regrets[t] == pytest.approx(SINGLE_BEST_REGRET[t])
        assert result.methods["random"].regrets[t] == pytest.approx(RANDOM_REGRET[t])
        assert result.methods["metafeatures_knn"].regrets[t] == pytest.approx(KNN_REGRET[t])
    assert result.methods["single_best"].mean_regret == pytest.approx((0.5 + 1 / 3) / 4)
    assert result.methods["random"].scores["A"] == pytest.approx(0.4)
    # oracle beats single_best on A (.5 > .4) and C (.6 > .5), ties on B and D
    assert result.beats_single_best("oracle") == 0.5
    assert result.beats_single_best("single_best") == 0.0
    assert result.beats_single_best("metafeatures_knn") == 0.25  # C: .6 > .5; A ties, B and D lose


def test_json_shape_of_the_result():
    payload = evaluate_recommender(DATA, SUMMARIES, matchers=()).to_json()
    assert set(payload["methods"]) == {*BASELINES, *meta_methods()}
    for method in payload["methods"].values():
        assert {"mean_regret", "beats_single_best", "per_dataset"} <= set(method)
        assert set(method["per_dataset"]) == set(NAMES)
    assert payload["methods"]["random"]["per_dataset"]["B"] == 0.4


def test_meta_features_are_log_counts_log_resolution_and_channels():
    f = meta_features({"n_classes": 10, "n_items": 1000, "mean_height": 20, "mean_width": 80, "channels": 3})
    np.testing.assert_allclose(f, [math.log(10), math.log(1000), math.log(40), 3.0])


def test_knn_standardises_so_a_large_scale_feature_does_not_dominate():
    # raw distances from x: p = sqrt(101), q = 3 -> q; standardised (std 5 and 1): p = sqrt(5), q = 3 -> p
    features = {"x": np.array([0.0, 0.0]), "p": np.array([10.0, 1.0]), "q": np.array([0.0, 3.0])}
    assert knn_column(features, ["x", "p", "q"], 0, [1, 2]) == 1
    # a constant feature is left unscaled instead of dividing by zero (which would make every distance infinite)
    features = {"x": np.array([0.0, 5.0]), "p": np.array([3.0, 7.0]), "q": np.array([1.0, 7.0])}
    assert knn_column(features, ["x", "p", "q"], 0, [1, 2]) == 2


def test_metafeature_evidence_ranks_known_columns_by_standardised_distance_and_hides_the_group():
    evidence = metafeature_evidence(PROBLEM, {d: meta_features(SUMMARIES[d]) for d in NAMES}, grouped=False)
    for target, partner in enumerate([2, 3, 0, 1]):  # A<->C, B<->D
        (ranking,) = evidence.rankings[target]  # one ranking: it does not depend on a batch of images
        assert ranking[0][0] == partner and len(ranking) == 3 and target not in {c for c, _ in ranking}
        scores = [s for _, s in ranking]
        assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
        assert evidence.nearest[target] == [pytest.approx(1 / scores[0] - 1)]
    # grouped: the partner is a sibling, so it is hidden with the held-out dataset
    grouped = Problem.build(DATA, groups={"A": "g1", "C": "g1", "B": "B", "D": "D"})
    evidence = metafeature_evidence(grouped, {d: meta_features(SUMMARIES[d]) for d in NAMES}, grouped=True)
    assert {c for c, _ in evidence.rankings[0][0]} == {1, 3}
    # wide neighbourhoods are offered to it (four coarse numbers tie many datasets), capped at the known count
    assert max(META_K_GRID) > 8


def test_meta_feature_neighbours_choose_k_nested_and_report_it():
    result = evaluate_recommender(DATA, SUMMARIES, matchers=(), policies=["neighbors"])
    chosen = result.settings["neighbor_params"]["metafeatures"]
    assert set(chosen) == set(NAMES) and all(1 <= c["k"] <= 3 for c in chosen.values())
    assert set(result.methods["neighbors/metafeatures"].regrets) == set(NAMES)


def test_other_meta_features_replace_the_summaries_own():
    # features pairing A with B and C with D (the summaries pair A with C): the 1-NN serves the partner's incumbent
    features = {"A": np.array([0.0]), "B": np.array([0.1]), "C": np.array([5.0]), "D": np.array([5.1])}
    result = evaluate_recommender(DATA, SUMMARIES, matchers=(), policies=["neighbors"], features=features)
    assert result.methods["metafeatures_knn"].regrets == pytest.approx({"A": 0.0, "B": 1.0, "C": 1 / 3, "D": 0.0})
    with pytest.raises(ConfigError, match="features"):
        evaluate_recommender(DATA, SUMMARIES, matchers=(), features={"A": np.zeros(1)})


@pytest.mark.parametrize("name", ["kmeans", "mlp", "moments"])
def test_matcher_lodo_picks_the_nearest_other_dataset(name: str):
    fps = fingerprints({"A": "B", "C": "D"})
    evidence = collect_evidence(PROBLEM, fps, name, SMALL[name], [8, 64], n_batches=5, seed=0, grouped=False)
    for size in (8, 64):  # A's partner B is the best match, although A itself was never seen
        assert {ranking[0][0] for ranking in evidence[size].rankings[0]} == {1}
        assert all(len(ranking) == 3 for ranking in evidence[size].rankings[0])  # A is not among the known


def test_matcher_methods_and_their_regrets():
    # fingerprint partners A<->B and C<->D differ from the meta-feature partners A<->C, B<->D
    fps = fingerprints({"A": "B", "C": "D"})
    result = evaluate_recommender(DATA, SUMMARIES, fps, matchers=("kmeans", "mlp"), params=SMALL,
                                  batch_sizes=(8, 64), n_batches=4, seed=1, policies=["incumbent"])
    methods = ["incumbent/kmeans@8", "incumbent/kmeans@64", "incumbent/mlp@8", "incumbent/mlp@64"]
    assert list(result.methods) == [*BASELINES, *meta_methods(("incumbent",)), *methods]
    # the meta-feature partners' own incumbents: A gets C's .4, B gets D's .6, C gets A's .6, D gets B's .4
    assert result.methods["incumbent/metafeatures"].regrets == pytest.approx(KNN_REGRET)
    expected = {"A": 0.0, "B": 1.0, "C": 1 / 3, "D": 0.0}  # A gets B's .5, B gets A's .2, C gets D's .5, D gets C's .8
    for method in methods:
        assert result.methods[method].regrets == pytest.approx(expected)
        assert result.beats_single_best(method) == 0.25  # A: .5 > .4; B loses, C and D tie
    assert result.settings["batch_sizes"] == [8, 64]


def test_refuses_a_portfolio_too_small_for_leave_one_out():
    small = PerformanceMatrix(configs=("A", "B"), datasets=("A", "B"), scores=np.eye(2))
    with pytest.raises(ConfigError, match="at least 3 known datasets"):
        evaluate_recommender(PerformanceData(matrix=small), SUMMARIES, matchers=())


def test_a_rectangular_matrix_of_candidates_that_are_no_incumbent():
    odd = PerformanceMatrix(configs=("x", "y", "z"), datasets=NAMES, scores=SCORES[:3])
    cands = [Candidate(id=c, configuration={}, source="space_filling") for c in odd.configs]
    result = evaluate_recommender(PerformanceData(matrix=odd), SUMMARIES, matchers=(), candidates=cands)
    # nothing is hidden with the held-out dataset: the oracle may pick any row, e.g. x (.9) on A
    assert result.methods["oracle"].picks["A"] == {"x": 1.0} and result.methods["oracle"].regrets["A"] == 0.0


def test_refuses_an_unknown_matcher_and_missing_inputs():
    with pytest.raises(UnknownMatcherError, match="bogus"):
        evaluate_recommender(DATA, SUMMARIES, fingerprints({"A": "B", "C": "D"}), matchers=("bogus",))
    with pytest.raises(ConfigError, match="fingerprints"):
        evaluate_recommender(DATA, SUMMARIES, None, matchers=("mlp",))
    with pytest.raises(ConfigError, match="summary"):
        evaluate_recommender(DATA, {k: v for k, v in SUMMARIES.items() if k != "D"}, matchers=())


def test_plot_regret_writes_a_png(tmp_path):
    result = evaluate_recommender(DATA, SUMMARIES, matchers=())
    path = plot_regret(result, tmp_path / "sub" / "regret.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metafeature_params_are_the_nested_choice_over_the_wide_grid():
    from portfolio.evaluation import choose_params, metafeature_params

    params, regret, grouped = metafeature_params(DATA, SUMMARIES)
    evidence = metafeature_evidence(PROBLEM, {d: meta_features(SUMMARIES[d]) for d in NAMES}, grouped=False)
    assert not grouped and (params, regret) == choose_params(PROBLEM, evidence, False, k_grid=META_K_GRID)
    # with groups that share a source, siblings are held out together
    assert metafeature_params(DATA, SUMMARIES, groups={"A": "g", "C": "g", "B": "B", "D": "D"})[2] is True
