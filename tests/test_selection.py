"""The selection layer on hand-made matrices and curves whose answers are worked out by hand (issue 11)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from finetune.config import FinetuneConfig
from finetune.space import build_search_space
from metafeatures.errors import ArtifactError, ConfigError
from metafeatures.fingerprint import FingerprintSpec
from portfolio import (
    Candidate,
    CellCurve,
    Cost,
    NoCandidateError,
    PerformanceData,
    PerformanceMatrix,
    PortfolioEntry,
    Recommender,
    SelectionSettings,
    build_portfolio,
    load_portfolio,
    save_portfolio,
)
from portfolio.calibration import calibrate
from portfolio.evaluation import (
    Problem,
    choose_from_table,
    choose_params,
    collect_evidence,
    evaluate_recommender,
    mean_policy_regret,
    metafeature_params,
    regret_table,
)
from portfolio.novelty import NoveltyCalibration
from portfolio.performance import matrix_from_curves
from portfolio.policies import NeighborParams, neighbor_weights, normalise_columns, rank_candidates
from tests.fixtures.portfolios import fake_summary, fit_matchers

# 4 candidates (rows) x 3 datasets (columns). Normalised per column (min 0, max 1):
#   A: [.9,.5,.1,.3] -> [1, .5, 0, .25]   B: [.2,.4,.8,.6] -> [0, 1/3, 1, 2/3]   C: [.5,.5,.5,.9] -> [0,0,0,1]
SCORES = np.array([[0.9, 0.2, 0.5],
                   [0.5, 0.4, 0.5],
                   [0.1, 0.8, 0.5],
                   [0.3, 0.6, 0.9]])


def test_normalise_columns_maps_each_column_to_0_1_and_a_flat_one_to_half():
    flat = np.array([[0.2, 0.7], [0.2, 0.1]])
    out = normalise_columns(flat, [0, 1])
    assert out[:, 0].tolist() == [0.5, 0.5] and out[:, 1].tolist() == [1.0, 0.0]
    norm = normalise_columns(SCORES, range(4))
    assert norm[:, 0] == pytest.approx([1, 0.5, 0, 0.25]) and norm[:, 2] == pytest.approx([0, 0, 0, 1])


def test_each_policy_on_a_hand_made_matrix():
    ranking = [(0, 0.6), (1, 0.3), (2, 0.1)]  # the probe looks most like dataset 0, then 1
    rows, cols = [0, 1, 2, 3], [0, 1, 2]
    incumbents = {0: 0, 1: 2, 2: 3}  # dataset 0's incumbent is row 0, dataset 1's row 2, dataset 2's row 3
    one = NeighborParams(k=1, weighting="uniform")
    # incumbent: the best match's own incumbent, then the next neighbours'
    got = rank_candidates("incumbent", SCORES, rows, cols, ranking, one, incumbents)
    assert got == [(0, 0.9, 0.6), (2, 0.8, 0.3), (3, 0.9, 0.1)]  # key: the neighbour's match score
    # single_best: best mean over the datasets: means .533, .467, .467, .6 -> row 3 (key = the mean)
    assert rank_candidates("single_best", SCORES, rows, cols, ranking, one)[0] == (3, pytest.approx(0.6),
                                                                                    pytest.approx(0.6))
    # neighbors k=2 uniform: .5*(norm col0) + .5*(norm col1): rows -> .5, .4167, .5, .4583; tie 0/2 -> row 0
    two = NeighborParams(k=2, weighting="uniform")
    got = rank_candidates("neighbors", SCORES, rows, cols, ranking, two)
    assert [r.row for r in got] == [0, 2, 3, 1]
    assert got[0].predicted == pytest.approx(0.5 * 0.9 + 0.5 * 0.2)  # predicted score on the raw scale
    # the key is on the normalised scale and falls down the list; the raw predictions need not
    assert [r.key for r in got] == pytest.approx([0.5, 0.5, 0.4583333, 0.4166667])
    assert [r.predicted for r in got] == pytest.approx([0.55, 0.45, 0.45, 0.45])
    # score weights 2/3, 1/3: row 0 -> 2/3, row 2 -> 1/3, row 3 -> .5*2/3... -> row 0 wins
    assert rank_candidates("neighbors", SCORES, rows, cols, ranking, NeighborParams(2, "score"))[0][0] == 0
    # a probe like dataset 1 then 2 (k=2, uniform): row 2 -> .5*1 + 0 = .5, row 3 -> .5*2/3 + .5*1 = .833
    assert rank_candidates("neighbors", SCORES, rows, cols, [(1, .7), (2, .3), (0, 0)], two)[0][0] == 3
    # reduced: only rows 1 and 2 may be served: like dataset 0 -> row 1 (.5 beats .1)
    assert rank_candidates("reduced", SCORES, rows, cols, ranking, one, reduced_rows=[1, 2])[0][0] == 1
    # limits: without row 0 the incumbent policy starts with dataset 1's incumbent
    assert rank_candidates("incumbent", SCORES, [1, 2, 3], cols, ranking, one, incumbents)[0][0] == 2
    with pytest.raises(ConfigError, match="policy"):
        rank_candidates("best_guess", SCORES, rows, cols, ranking, one)


def test_neighbor_weights():
    ranking = [(3, 0.5), (1, 0.3), (0, 0.2)]
    assert neighbor_weights(ranking, NeighborParams(2, "uniform")) == {3: 0.5, 1: 0.5}
    assert neighbor_weights(ranking, NeighborParams(2, "score")) == pytest.approx({3: 0.625, 1: 0.375})
    assert neighbor_weights(ranking, NeighborParams(3, "rank")) == pytest.approx({3: 6 / 11, 1: 3 / 11, 0: 2 / 11})
    assert neighbor_weights([(0, 0.0), (1, 0.0)], NeighborParams(2, "score")) == {0: 0.5, 1: 0.5}


# ------------------------------------------------------------------------------------------ time budget


def curves_where_the_winner_changes() -> PerformanceData:
    """'fast' predicts 0.6 after 1 s and stays; 'slow' predicts 0.1 at 1 s and 0.9 from 100 s on (runs of 300 s)."""
    curves = {("fast", d): CellCurve(t=(1.0,), nauc=(0.6,), budget_s=300.0) for d in ("x", "y", "z")}
    curves.update({("slow", d): CellCurve(t=(1.0, 100.0), nauc=(0.1, 0.9), budget_s=300.0) for d in ("x", "y", "z")})
    return matrix_from_curves(["fast", "slow"], ["x", "y", "z"], curves)


def test_budget_reranks_hand_made_curves():
    data = curves_where_the_winner_changes()
    short, flags = data.scores_at(60.0)  # 'slow' has not reached 0.9 yet
    assert short[0, 0] > short[1, 0] and not flags.any()
    long_, _ = data.scores_at(1200.0)
    assert long_[1, 0] > long_[0, 0]
    _, flags = data.scores_at(3600.0)  # beyond the 300 s runs: the last value is held and flagged
    assert flags.all()
    # the stored matrix is the curves' ALC at the portfolio's own T, and checked on load
    assert data.matrix.scores[0, 0] == pytest.approx(CellCurve((1.0,), (0.6,), 300.0).alc(1200.0))
    bad = PerformanceData(matrix=PerformanceMatrix(("fast", "slow"), ("x", "y", "z"), np.full((2, 3), 0.5)),
                          curves=data.curves)
    with pytest.raises(ArtifactError, match="curve's ALC"):
        bad.check()


def test_mean_curve_of_seeds_has_the_mean_alc_at_every_budget():
    from portfolio.performance import mean_curve

    a = [(1.0, 0.2), (30.0, 0.6), (300.0, 0.7)]
    b = [(5.0, 0.4), (30.0, 0.5), (100.0, 0.9)]
    mean = mean_curve([a, b])
    # every time either run reports; a run scores 0 before its first point
    assert [t for t, _ in mean] == [1.0, 5.0, 30.0, 100.0, 300.0]
    assert [v for _, v in mean] == pytest.approx([0.1, 0.3, 0.55, 0.75, 0.8])
    for budget in (3.0, 60.0, 200.0, 1200.0):  # ALC is linear in the step curve: mean curve = mean ALC
        alcs = [CellCurve(tuple(t for t, _ in c), tuple(v for _, v in c), 300.0).alc(budget) for c in (a, b, mean)]
        assert alcs[2] == pytest.approx((alcs[0] + alcs[1]) / 2)
    assert mean_curve([a]) == a
    with pytest.raises(ValueError, match="at least one"):
        mean_curve([])


def test_curves_refuse_bad_input():
    with pytest.raises(ValueError, match="increasing"):
        CellCurve(t=(5.0, 1.0), nauc=(0.1, 0.2), budget_s=9.0)
    with pytest.raises(ValueError, match="NAUC"):
        CellCurve(t=(1.0,), nauc=(2.0,), budget_s=9.0)
    no_curves = PerformanceData(matrix=PerformanceMatrix(("a", "b"), ("x",), np.array([[0.1], [0.2]])))
    with pytest.raises(ValueError, match="no learning curves"):
        no_curves.scores_at(60.0)
    assert no_curves.scores_at(None)[0].tolist() == [[0.1], [0.2]]


# ------------------------------------------------------------------------------------------ a portfolio


DIM = 6
NAMES = ("x", "y", "z")


def features(name: str, n: int, seed: int) -> np.ndarray:
    """Fingerprints of dataset ``name``: a Gaussian blob per dataset, far apart."""
    centre = np.zeros(DIM)
    centre[NAMES.index(name) if name in NAMES else DIM - 1] = 8.0
    return centre + np.random.default_rng(seed).standard_normal((n, DIM))


CONFIGS = {"fast": FinetuneConfig(), "slow": FinetuneConfig(backbone="resnet18", pretrained="none", lr=0.01)}


def cost(params: int, latency: float) -> Cost:
    return Cost(params=params, flops=params * 10, latency_ms=latency, device="cpu:test (hand-made)")


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A 2-candidate x 3-dataset portfolio (no incumbents among the candidates) with curves and costs."""
    data = curves_where_the_winner_changes()
    entries = [PortfolioEntry.from_objects(fake_summary(n), CONFIGS["fast"], 0.5, 9.0, "seconds") for n in NAMES]
    cands = [Candidate(id="fast", configuration=CONFIGS["fast"].to_dict(), source="space_filling",
                       cost=cost(3_000_000, 5.0)),
             Candidate(id="slow", configuration=CONFIGS["slow"].to_dict(), source="space_filling",
                       cost=cost(11_000_000, 20.0))]
    matchers = fit_matchers({n: features(n, 40, i) for i, n in enumerate(NAMES)})
    novelty = NoveltyCalibration(distances={8: tuple(sorted(  # held-out distances as calibrate would measure them
        float(matchers["mlp"].distance(features(n, 8, 100 + k))[[j for j in range(3) if j != NAMES.index(n)]].min())
        for n in NAMES for k in range(5)))}, threshold=0.9)
    selection = SelectionSettings(default_policy="neighbors", reason="hand-made", novelty=novelty)
    spec = FingerprintSpec(backbone="resnet18", weights="random:seed0", weights_sha256="ab" * 32, resolution=32,
                           feature_dim=DIM)
    portfolio = build_portfolio(entries=entries, matrix=data.matrix, fingerprint_spec=spec,
                                config_space=build_search_space(), matcher_names=["mlp", "kmeans"], scenario={},
                                candidates=cands, performance=data, selection=selection)
    return save_portfolio(portfolio, tmp_path_factory.mktemp("sel") / "pf", matchers, figures=False)


def test_saved_portfolio_round_trips_candidates_curves_and_selection(saved):
    loaded = load_portfolio(saved)
    assert [c.id for c in loaded.candidates] == ["fast", "slow"] and loaded.candidates[1].cost.params == 11_000_000
    assert loaded.performance.has_curves and loaded.selection.novelty.threshold == 0.9


def test_recommendation_follows_the_time_budget_and_says_when_it_extrapolates(saved):
    rec = Recommender(load_portfolio(saved), "mlp")
    short = rec.recommend(features("x", 8, 1), time_budget_s=60)
    assert short.candidates[0].id == "fast" and short.time_budget_s == 60 and short.time_budget_requested
    assert not short.candidates[0].extrapolated
    long_ = rec.recommend(features("x", 8, 1), time_budget_s=1200)
    assert long_.candidates[0].id == "slow" and long_.configuration == CONFIGS["slow"].to_dict()
    assert rec.recommend(features("x", 8, 1), time_budget_s=3600).candidates[0].extrapolated
    default = rec.recommend(features("x", 8, 1))
    assert default.time_budget_s == 1200 and not default.time_budget_requested
    assert all(c.cost is not None for c in default.candidates)


def test_meta_feature_evidence_uses_the_calibration_when_the_portfolio_has_one(saved):
    loaded = load_portfolio(saved)
    rec = Recommender(loaded, "mlp")
    summary = loaded.portfolio.entries[1].summary  # the hand-made summaries share their meta-features
    got = rec.recommend(features("x", 8, 1), evidence="metafeatures", summary=summary)
    assert got.evidence == "metafeatures" and [n.distance for n in got.neighbors] == [0.0] * 3
    assert [n.dataset for n in got.neighbors] == [e.dataset for e in loaded.portfolio.entries]  # ties: their order
    chosen = rec.metafeature_params()  # not calibrated in this portfolio: chosen on its own matrix, then kept
    assert rec.metafeature_params() is chosen
    pinned = NeighborParams(k=1, weighting="uniform")
    pinned_loaded = dataclasses.replace(loaded, selection=SelectionSettings(
        default_policy="neighbors", reason="hand-made", neighbors={"metafeatures": pinned}))
    assert Recommender(pinned_loaded, "mlp").metafeature_params() == pinned


def test_limits_drop_candidates_and_none_left_names_the_cheapest(saved):
    rec = Recommender(load_portfolio(saved), "mlp")
    got = rec.recommend(features("x", 8, 1), time_budget_s=1200, max_latency_ms=10)
    assert [c.id for c in got.candidates] == ["fast"] and got.limits == {"max_latency_ms": 10}
    assert [c.id for c in rec.recommend(features("x", 8, 1), max_params=5_000_000).candidates] == ["fast"]
    with pytest.raises(NoCandidateError, match="cheapest is 'fast'.*3000000 parameters") as info:
        rec.recommend(features("x", 8, 1), max_params=1000)
    assert info.value.cheapest["candidate"] == "fast"


def test_novelty_is_low_for_a_known_dataset_high_for_noise_and_triggers_the_fallback(saved):
    rec = Recommender(load_portfolio(saved), "mlp")
    known = rec.recommend(features("y", 8, 7), policy="neighbors")
    assert known.novelty is not None and known.novelty <= 0.1 and not known.fallback.used
    no_incumbents = rec.recommend(features("y", 8, 7), policy="incumbent")  # this portfolio's candidates are none
    assert no_incumbents.fallback.used and "no neighbour's incumbent" in no_incumbents.fallback.reason
    far = np.random.default_rng(3).standard_normal((8, DIM)) * 5 - 20  # far from every blob
    novel = rec.recommend(far, policy="neighbors")
    assert novel.novelty == 1.0 and novel.fallback.used and "novelty 1.00" in novel.fallback.reason
    assert novel.policy == "neighbors"  # what was asked; the fallback says what was served instead
    assert novel.nearest_distance > known.nearest_distance


def test_bad_requests_name_the_field(saved):
    rec = Recommender(load_portfolio(saved), "mlp")
    batch = features("x", 8, 1)
    for fields, name in (({"policy": "bogus"}, "policy"), ({"time_budget_s": -5}, "time_budget_s"),
                         ({"time_budget_s": 1e12}, "time_budget_s"), ({"max_latency_ms": "fast"}, "max_latency_ms"),
                         ({"max_params": 0}, "max_params"), ({"top_k": 0}, "top_k"), ({"colour": 1}, "colour")):
        with pytest.raises(ConfigError, match=name):
            rec.recommend(batch, **fields)


# ------------------------------------------------------------------------------------------ leave-one-out


def test_the_nested_choice_from_one_regret_table_equals_choosing_anew_per_held_out_set():
    # evaluate_recommender chooses k and weighting for each held-out set from one table of per-target regrets
    # (48 times fewer picks on the shipped portfolio); it must give exactly what choose_params gives
    rng = np.random.default_rng(3)
    names = tuple(f"g{i // 2}_{i % 2}" for i in range(8))
    matrix = PerformanceMatrix(configs=tuple(f"c{i}" for i in range(5)), datasets=names,
                               scores=rng.uniform(-0.2, 1.0, (5, 8)))
    cands = [Candidate(id=c, configuration=FinetuneConfig().to_dict(), source="space_filling")
             for c in matrix.configs]
    fps = {n: np.eye(DIM)[i % DIM] * 2 + rng.standard_normal((30, DIM)) for i, n in enumerate(names)}
    problem = Problem.build(PerformanceData(matrix=matrix), cands, groups={n: n.split("_")[0] for n in names})
    for grouped in (False, True):
        ev = collect_evidence(problem, fps, "kmeans", {"n_clusters": 6, "n_init": 1}, [4], 3, 0, grouped)[4]
        grid, table = regret_table(problem, ev, grouped)
        choices = set()
        for target in range(len(names)):
            others = [t for t in range(len(names)) if t not in problem.hidden(target, grouped)]
            # the definition: the grid point with the least mean regret over the other targets (ties: grid order)
            scored = [(mean_policy_regret(problem, ev, "neighbors", p, grouped, others), i, p)
                      for i, p in enumerate(grid)]
            regret, _, params = min(scored, key=lambda t: (t[0], t[1]))
            assert choose_from_table(grid, table, ev, others) == (params, regret)
            assert choose_params(problem, ev, grouped, others) == (params, regret)
            choices.add(params)
        assert len(choices) > 1 or grouped  # the answer depends on the held-out set: the check is not vacuous


def test_choose_params_and_calibration_on_a_problem_with_a_known_answer():
    # 5 datasets in two families (a: 0,1,2; b: 3,4); candidate 0 is best on family a, candidate 1 on b, 2 is average
    scores = np.array([[0.9, 0.9, 0.9, 0.1, 0.1],
                       [0.1, 0.1, 0.1, 0.9, 0.9],
                       [0.55, 0.55, 0.55, 0.55, 0.55]])
    names = ("a1", "a2", "a3", "b1", "b2")
    matrix = PerformanceMatrix(configs=("ca", "cb", "cmid"), datasets=names, scores=scores)
    data = PerformanceData(matrix=matrix)
    cands = [Candidate(id=c, configuration=FinetuneConfig().to_dict(), source="space_filling")
             for c in matrix.configs]
    rng = np.random.default_rng(0)
    fps = {n: (np.eye(DIM)[0 if n[0] == "a" else 1] * 6 + 0.3 * i) + rng.standard_normal((40, DIM))
           for i, n in enumerate(names)}
    problem = Problem.build(data, cands)
    ev = collect_evidence(problem, fps, "kmeans", {"n_clusters": 5, "n_init": 2}, [16], 4, 0, False)[16]
    params, regret = choose_params(problem, ev, grouped=False)
    assert regret == 0.0  # a neighbour of the same family always points at the family's best candidate
    result = evaluate_recommender(data, {n: {"n_classes": 2, "n_items": 40, "mean_height": 8, "mean_width": 8,
                                             "channels": 3} for n in names}, fps, matchers=["kmeans"],
                                  params={"kmeans": {"n_clusters": 5, "n_init": 2}}, batch_sizes=[16], n_batches=4,
                                  policies=["neighbors", "single_best"], candidates=cands)
    assert result.methods["neighbors/kmeans@16"].mean_regret == 0.0
    assert result.methods["single_best"].mean_regret > 0.3  # the one-size-fits-all default is wrong on a family
    assert result.beats_single_best("neighbors/kmeans@16") >= 0.6
    matchers = {"kmeans": fit_matchers(fps, kmeans={"n_clusters": 5, "n_init": 2})["kmeans"]}
    settings = calibrate(data, cands, fps, matchers, reduced=["ca", "cb"], default_matcher="kmeans", batch_size=16,
                         n_batches=4)
    assert settings.default_policy == "neighbors" and settings.novelty is not None
    assert settings.evaluation["regrets"]["kmeans"]["neighbors"] == 0.0
    assert "leave-one-dataset-out over 5" in settings.reason
    assert "metafeatures" not in settings.neighbors  # no summaries given: not calibrated, chosen when served
    # with the summaries, the meta-feature neighbours are calibrated too and travel with the settings
    summaries = {n: {"n_classes": 2 + i, "n_items": 40, "mean_height": 8, "mean_width": 8, "channels": 3}
                 for i, n in enumerate(names)}
    settings = calibrate(data, cands, fps, matchers, reduced=["ca", "cb"], default_matcher="kmeans", batch_size=16,
                         n_batches=4, summaries=summaries)
    meta = metafeature_params(data, summaries, cands)
    assert settings.neighbors["metafeatures"] == meta[0]
    assert settings.evaluation["metafeatures_neighbors_regret"] == round(meta[1], 4)
    assert SelectionSettings.from_dict(settings.to_dict()).neighbors["metafeatures"] == meta[0]


def test_grouped_leave_out_never_leaks_a_sibling():
    names = ("a1", "a2", "b1", "b2")
    scores = np.array([[0.9, 0.8, 0.1, 0.2], [0.2, 0.1, 0.8, 0.9], [0.5, 0.5, 0.5, 0.5], [0.6, 0.6, 0.4, 0.4]])
    matrix = PerformanceMatrix(configs=names, datasets=names, scores=scores)
    cands = [Candidate(id=n, configuration=FinetuneConfig().to_dict(), source="incumbent", dataset=n) for n in names]
    problem = Problem.build(PerformanceData(matrix=matrix), cands, groups={"a1": "a", "a2": "a", "b1": "b", "b2": "b"})
    hidden = problem.hidden(0, grouped=True)
    assert hidden == {0, 1} and problem.columns(hidden) == [2, 3]
    assert problem.rows(hidden) == [2, 3]  # neither a1's nor a2's incumbent may be recommended for a1
    assert problem.hidden(0, grouped=False) == {0} and problem.rows({0}) == [1, 2, 3]


def test_grouped_evaluation_fits_once_per_group_and_reports_per_group():
    names = ("a1", "a2", "b1", "b2", "c1", "c2")
    groups = {n: n[0] for n in names}
    scores = np.array([[0.9, 0.8, 0.1, 0.2, 0.5, 0.5], [0.2, 0.1, 0.8, 0.9, 0.4, 0.6], [0.5, 0.5, 0.5, 0.5, 0.9, 0.8]])
    matrix = PerformanceMatrix(configs=("x", "y", "z"), datasets=names, scores=scores)
    cands = [Candidate(id=c, configuration=FinetuneConfig().to_dict(), source="space_filling") for c in matrix.configs]
    rng = np.random.default_rng(1)
    fps = {n: np.eye(DIM)["abc".index(n[0])] * 6 + rng.standard_normal((30, DIM)) for n in names}
    summaries = {n: {"n_classes": 2, "n_items": 30, "mean_height": 8, "mean_width": 8, "channels": 3} for n in names}
    for grouped, fits in ((True, 3), (False, 6)):
        said: list[str] = []
        result = evaluate_recommender(PerformanceData(matrix=matrix), summaries, fps, matchers=["kmeans"],
                                      params={"kmeans": {"n_clusters": 6, "n_init": 2}}, batch_sizes=[8], n_batches=3,
                                      policies=["neighbors", "single_best"], candidates=cands, groups=groups,
                                      grouped=grouped, on_progress=said.append)
        assert len(said) == fits  # siblings hide the same set: one refit per group when grouped
        data = result.to_json()
        method = data["methods"]["neighbors/kmeans@8"]
        for g in "abc":
            assert method["per_group"][g] == pytest.approx(np.mean([method["per_dataset"][f"{g}1"],
                                                                     method["per_dataset"][f"{g}2"]]), abs=1e-4)
        own, ref = result.per_group(result.methods["neighbors/kmeans@8"].scores), \
            result.per_group(result.methods["single_best"].scores)
        assert result.beats_single_best_groups("neighbors/kmeans@8") == pytest.approx(
            np.mean([own[g] > ref[g] + 1e-9 for g in "abc"]))
        assert data["groups"] == groups and "(groups)" in result.table() and "a" in result.per_group_table()
