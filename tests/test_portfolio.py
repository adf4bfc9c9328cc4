"""Portfolio: greedy reduced-portfolio selection on hand-made matrices, the artifact's save/load checks, the
Recommender and the figures."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from metafeatures.errors import ArtifactError, ConfigError, OutputExistsError, SpecMismatchError
from metafeatures.fingerprint import FingerprintSpec
from metafeatures.matchers import save_matcher
from portfolio import (
    PORTFOLIO_FORMAT_VERSION,
    PerformanceMatrix,
    Recommender,
    choose_reduced,
    greedy_reduced_portfolio,
    load_portfolio,
    portfolio_score,
    save_portfolio,
)
from portfolio.artifact import (
    CURVE_FIGURE,
    MATRIX_FIGURE,
    PORTFOLIO_FILE,
    VERSION_PATTERN,
    PortfolioSpecMismatchError,
)
from portfolio.figures import plot_performance_matrix, plot_portfolio_curve
from portfolio.selection import FAILED_SCORE, portfolio_stats
from tests.fixtures import portfolios as fixtures
from tests.fixtures.portfolios import SCORES, make_portfolio

# Hand-made 3×3 matrix SCORES (tests/fixtures/portfolios.py; rows: incumbent of a/b/c; columns: datasets a/b/c).
#   m=1: a -> 0.5(0.2+0.5333)=0.3667, b -> 0.5(0.3+0.5667)=0.4333, c -> 0.5(0.5+0.7)=0.6        => pick c
#   m=2: c+a -> best [.9,.7,.9]: 0.5(0.7+0.8333)=0.7667; c+b -> [.6,.8,.9]: 0.5(0.6+0.7667)=0.6833 => pick a
#   m=3: [.9,.8,.9]: 0.5(0.8+0.8667)=0.8333
NAMES = ("a", "b", "c")
DIM = 16


def hand_matrix() -> PerformanceMatrix:
    return PerformanceMatrix(configs=NAMES, datasets=NAMES, scores=SCORES)


# ------------------------------------------------------------------------------------------ selection


def test_portfolio_score_by_hand():
    P = hand_matrix()
    assert portfolio_score(P, ["c"]) == pytest.approx(0.6)
    assert portfolio_score(P, ["a"]) == pytest.approx(0.5 * (0.2 + 1.6 / 3))
    assert portfolio_score(P, ["a", "b", "c"]) == pytest.approx(0.5 * (0.8 + 2.6 / 3))
    assert portfolio_stats(P, ["c", "a"]) == pytest.approx((0.5 * (0.7 + 2.5 / 3), 0.7, 2.5 / 3))
    with pytest.raises(KeyError, match="zzz"):
        portfolio_score(P, ["zzz"])
    with pytest.raises(ValueError, match="at least one member"):
        portfolio_score(P, [])
    with pytest.raises(TypeError):
        portfolio_score(P, "abc")


def test_greedy_reduced_portfolio_by_hand():
    steps = greedy_reduced_portfolio(hand_matrix())
    assert [s.size for s in steps] == [1, 2, 3]
    assert [s.added for s in steps] == ["c", "a", "b"]
    assert [s.members for s in steps] == [("c",), ("c", "a"), ("c", "a", "b")]
    assert [s.score for s in steps] == pytest.approx([0.6, 0.5 * (0.7 + 2.5 / 3), 0.5 * (0.8 + 2.6 / 3)])
    assert [s.min for s in steps] == pytest.approx([0.5, 0.7, 0.8])
    assert [s.mean for s in steps] == pytest.approx([0.7, 2.5 / 3, 2.6 / 3])
    assert choose_reduced(steps).size == 3
    assert choose_reduced(steps, tolerance=0.1).members == ("c", "a")
    assert choose_reduced(steps, tolerance=1.0).members == ("c",)
    assert len(greedy_reduced_portfolio(hand_matrix(), max_size=2)) == 2
    assert len(greedy_reduced_portfolio(hand_matrix(), max_size=10)) == 3
    with pytest.raises(ValueError, match="max_size"):
        greedy_reduced_portfolio(hand_matrix(), max_size=0)
    with pytest.raises(ValueError, match="no portfolio steps"):
        choose_reduced([])
    with pytest.raises(ValueError, match="tolerance"):
        choose_reduced(steps, tolerance=-0.1)


def test_nan_counts_as_worst_score():
    P = PerformanceMatrix(configs=("x", "y"), datasets=("d1", "d2"), scores=np.array([[np.nan, 1.0], [0.5, 0.5]]))
    assert P.score("x", "d1") == FAILED_SCORE == -1.0
    assert math.isnan(P.score("x", "d1", filled=False))
    assert portfolio_score(P, ["x"]) == pytest.approx(0.5 * (-1.0 + 0.0))
    steps = greedy_reduced_portfolio(P)
    assert steps[0].added == "y" and steps[0].score == pytest.approx(0.5)
    assert steps[1].score == pytest.approx(0.5 * (0.5 + 0.75))
    all_failed = PerformanceMatrix(configs=("x",), datasets=("d1",), scores=np.array([[np.nan]]))
    assert portfolio_score(all_failed, ["x"]) == -1.0


def test_ties_go_to_the_first_config_and_single_config():
    tied = PerformanceMatrix(configs=("q", "p"), datasets=("d1", "d2"), scores=np.array([[0.4, 0.6], [0.4, 0.6]]))
    steps = greedy_reduced_portfolio(tied)
    assert [s.added for s in steps] == ["q", "p"]
    assert choose_reduced(steps).size == 1  # adding an identical config does not help
    single = PerformanceMatrix(configs=("only",), datasets=("d1", "d2", "d3"), scores=np.array([[0.2, 0.5, 0.8]]))
    (step,) = greedy_reduced_portfolio(single)
    assert step.members == ("only",) and step.score == pytest.approx(0.5 * (0.2 + 0.5))


def test_performance_matrix_validation_and_round_trip():
    with pytest.raises(ValueError, match="shape"):
        PerformanceMatrix(configs=("a", "b"), datasets=("a",), scores=np.zeros((1, 1)))
    with pytest.raises(ValueError, match="finite"):
        PerformanceMatrix(configs=("a",), datasets=("a",), scores=np.array([[np.inf]]))
    with pytest.raises(ValueError, match="duplicate"):
        PerformanceMatrix(configs=("a", "a"), datasets=("a",), scores=np.zeros((2, 1)))
    with pytest.raises(ValueError, match="at least one"):
        PerformanceMatrix(configs=(), datasets=("a",), scores=np.zeros((0, 1)))
    P = PerformanceMatrix(configs=("x", "y"), datasets=("d1", "d2"), scores=np.array([[np.nan, 1.0], [0.5, 0.25]]))
    data = json.loads(json.dumps(P.to_dict(), allow_nan=False))
    assert data["scores"][0][0] is None
    assert PerformanceMatrix.from_dict(data) == P
    assert P != hand_matrix()
    with pytest.raises(ArtifactError, match="not a number"):
        PerformanceMatrix.from_dict({**data, "scores": [["x", 1.0], [0.5, 0.25]]})
    with pytest.raises(ArtifactError, match="shape"):
        PerformanceMatrix.from_dict({**data, "scores": [[0.5, 1.0]]})
    with pytest.raises(ArtifactError, match="unknown key"):
        PerformanceMatrix.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError):  # read-only copy
        P.scores[0, 0] = 0.0


# ------------------------------------------------------------------------------------------ artifact fixtures


SPEC = FingerprintSpec(backbone="resnet18", weights="random:seed0", weights_sha256="ab" * 32, resolution=32,
                       feature_dim=DIM)
OTHER_SPEC = FingerprintSpec(backbone="resnet18", weights="random:seed1", weights_sha256="cd" * 32, resolution=32,
                             feature_dim=DIM)
CONFIGS = dict(zip(NAMES, fixtures.INCUMBENTS, strict=True))
CENTRES = np.random.default_rng(0).normal(0.0, 3.0, size=(3, DIM))


def features(dataset: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return CENTRES[NAMES.index(dataset)] + rng.normal(0.0, 1.0, size=(n, DIM))


def fit_matchers(datasets: tuple[str, ...] = NAMES) -> dict:
    return fixtures.fit_matchers({d: features(d, 60, seed=i) for i, d in enumerate(datasets)})


@pytest.fixture(scope="module")
def built():
    portfolio = make_portfolio([fixtures.fake_summary(d) for d in NAMES], SPEC, matcher_names=["mlp", "kmeans"])
    return portfolio, fit_matchers()


@pytest.fixture
def saved(built, tmp_path: Path) -> Path:
    portfolio, matchers = built
    return save_portfolio(portfolio, tmp_path / "pf", matchers, figures=False)


def edit(directory: Path, change) -> None:
    path = directory / PORTFOLIO_FILE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# ------------------------------------------------------------------------------------------ artifact


def test_build_save_load_round_trip(built, tmp_path: Path):
    portfolio, matchers = built
    assert VERSION_PATTERN.match(portfolio.version) and portfolio.version.startswith("demo-")
    assert portfolio.version.endswith(portfolio.content_hash()[:8])
    assert portfolio.reduced_portfolio == ["c", "a"]
    assert [s["added"] for s in portfolio.reduced_portfolio_curve] == ["c", "a", "b"]
    assert portfolio.provenance["dataset_hashes"] == {d: f"hash-of-{d}" for d in NAMES}
    out = save_portfolio(portfolio, tmp_path / "pf", matchers)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [PORTFOLIO_FILE, "matcher-mlp.npz", "matcher-kmeans.npz", MATRIX_FIGURE, CURVE_FIGURE])
    assert [p.name for p in tmp_path.iterdir()] == ["pf"]  # no temporary folder left behind
    loaded = load_portfolio(out)
    assert loaded.portfolio == portfolio
    assert loaded.matrix == hand_matrix()
    assert loaded.fingerprint_spec == SPEC
    assert loaded.configuration("c") == CONFIGS["c"]
    assert set(loaded.matchers) == {"mlp", "kmeans"}
    assert list(loaded.matchers["mlp"].classes_) == list(NAMES)
    batch = features("a", 32, seed=99)
    assert loaded.matchers["kmeans"].rank(batch) == matchers["kmeans"].rank(batch)


def test_save_refuses_overwrite_and_inconsistent_input(built, saved: Path):
    portfolio, matchers = built
    with pytest.raises(OutputExistsError, match="overwrite"):
        save_portfolio(portfolio, saved, matchers)
    save_portfolio(portfolio, saved, matchers, overwrite=True, figures=False)
    assert load_portfolio(saved).version == portfolio.version
    assert sorted(p.name for p in saved.parent.iterdir()) == ["pf"]
    with pytest.raises(ArtifactError, match="lacks portfolio matcher"):
        save_portfolio(portfolio, saved.parent / "other", {"mlp": matchers["mlp"]})
    assert not (saved.parent / "other").exists()
    with pytest.raises(ArtifactError, match="version"):
        save_portfolio(portfolio.model_copy(update={"reduced_portfolio": ["c"]}), saved.parent / "other", matchers)


def test_refuses_wrong_format_version(saved: Path):
    edit(saved, lambda d: d.update(format_version=PORTFOLIO_FORMAT_VERSION + 1))
    with pytest.raises(ArtifactError, match=r"portfolio\.json: unsupported portfolio format_version 3"):
        load_portfolio(saved)


def test_refuses_tampered_configuration(saved: Path):
    edit(saved, lambda d: d["entries"][1]["configuration"].update(lr=5))
    with pytest.raises(ArtifactError, match=r"portfolio\.json: entry 'b': configuration: lr=5"):
        load_portfolio(saved)


def test_refuses_configuration_outside_the_search_space(saved: Path):
    edit(saved, lambda d: d["entries"][0]["configuration"].update(batch_size=33))
    with pytest.raises(ArtifactError, match="entry 'a'.*not in the portfolio's config_space.*batch_size"):
        load_portfolio(saved)


def test_refuses_entry_missing_from_matrix(saved: Path):
    def drop_c(data: dict) -> None:
        data["performance_matrix"] = {"configs": ["a", "b"], "datasets": ["a", "b"],
                                      "scores": [[0.9, 0.5], [0.6, 0.8]]}

    edit(saved, drop_c)
    with pytest.raises(ArtifactError, match="performance matrix datasets lacks entry dataset.*c"):
        load_portfolio(saved)


def test_refuses_reduced_member_that_is_not_an_entry(saved: Path):
    edit(saved, lambda d: d.update(reduced_portfolio=["c", "zzz"]))
    with pytest.raises(ArtifactError, match="reduced_portfolio member.*'zzz'.*not candidates"):
        load_portfolio(saved)


def test_refuses_missing_matcher_file(saved: Path):
    (saved / "matcher-kmeans.npz").unlink()
    with pytest.raises(ArtifactError, match=r"matcher-kmeans\.npz: file of matcher 'kmeans' is missing"):
        load_portfolio(saved)


def test_refuses_matcher_fitted_under_another_spec(built, saved: Path):
    save_matcher(built[1]["kmeans"], saved / "matcher-kmeans.npz", OTHER_SPEC.to_dict())
    with pytest.raises(PortfolioSpecMismatchError, match=r"matcher-kmeans\.npz: fingerprint spec mismatch") as info:
        load_portfolio(saved)
    assert isinstance(info.value, SpecMismatchError) and isinstance(info.value, ArtifactError)


def test_refuses_matcher_that_knows_other_datasets(saved: Path):
    save_matcher(fit_matchers(("a", "b"))["kmeans"], saved / "matcher-kmeans.npz", SPEC.to_dict())
    with pytest.raises(ArtifactError, match=r"matcher-kmeans\.npz: matcher 'kmeans' classes_ lacks entry dataset"):
        load_portfolio(saved)


def test_refuses_edit_after_versioning(saved: Path):
    edit(saved, lambda d: d["entries"][0].update(score=0.99))
    with pytest.raises(ArtifactError, match="does not match the content hash"):
        load_portfolio(saved)
    edit(saved, lambda d: d.update(version="not-a-version"))
    with pytest.raises(ArtifactError, match="not of the form"):
        load_portfolio(saved)


def test_refuses_malformed_json_and_unknown_fields(saved: Path):
    edit(saved, lambda d: d.update(surprise=1))
    with pytest.raises(ArtifactError, match="surprise"):
        load_portfolio(saved)
    (saved / PORTFOLIO_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="not readable JSON"):
        load_portfolio(saved)
    shutil.rmtree(saved)
    with pytest.raises(ArtifactError, match="no such directory"):
        load_portfolio(saved)


# ------------------------------------------------------------------------------------------ recommender


@pytest.mark.parametrize("matcher", ["mlp", "kmeans"])
def test_recommender_finds_the_dataset_it_is_shown(saved: Path, matcher: str):
    loaded = load_portfolio(saved)
    rec = Recommender(loaded, matcher)
    for i, dataset in enumerate(NAMES):
        result = rec.recommend(features(dataset, 32, seed=100 + i), top_k=3)
        assert result.best_match == dataset == result.neighbors[0].dataset == result.incumbent_of
        assert result.configuration == CONFIGS[dataset].to_dict()
        scores = [n.score for n in result.neighbors]
        assert scores == sorted(scores, reverse=True) and sum(scores) <= 1.0 + 1e-9
        assert result.portfolio_version == loaded.version and result.matcher == matcher
        assert result.fingerprint_spec == SPEC.to_dict() and not result.restricted_to_reduced
    assert len(rec.recommend(features("a", 8, seed=7), top_k=1).neighbors) == 1


def test_recommender_reduced_picks_best_member_on_the_match(saved: Path):
    rec = Recommender(load_portfolio(saved), "mlp")
    # reduced portfolio is [c, a]; on dataset b, P[c, b] = 0.7 > P[a, b] = 0.5, so c's configuration wins
    result = rec.recommend(features("b", 32, seed=5), reduced=True)
    assert result.best_match == "b" and result.incumbent_of == "c" and result.restricted_to_reduced
    assert result.configuration == CONFIGS["c"].to_dict()
    # on dataset a, a itself is in the reduced portfolio and scores best there
    assert rec.recommend(features("a", 32, seed=6), reduced=True).incumbent_of == "a"


def test_recommender_refuses_bad_input(saved: Path):
    loaded = load_portfolio(saved)
    with pytest.raises(ConfigError, match="available: kmeans, mlp"):
        Recommender(loaded, "moments")
    rec = Recommender(loaded)
    with pytest.raises(ValueError, match=f"dimension {DIM - 1}, expected {DIM}"):
        rec.recommend(np.zeros((4, DIM - 1)))
    with pytest.raises(ValueError, match="NaN"):
        rec.recommend(np.full((4, DIM), np.nan))
    with pytest.raises(ConfigError, match="top_k"):
        rec.recommend(np.zeros((4, DIM)), top_k=0)
    assert rec.recommend(features("c", 1, seed=3)[0]).best_match in NAMES  # one 1-D fingerprint is a batch of one


# ------------------------------------------------------------------------------------------ figures


def test_figures_are_written(tmp_path: Path):
    P = PerformanceMatrix(configs=NAMES, datasets=NAMES, scores=np.where(np.eye(3) > 0, SCORES, np.nan))
    heat = plot_performance_matrix(P, tmp_path / "matrix.png")
    curve = plot_portfolio_curve(greedy_reduced_portfolio(hand_matrix()), tmp_path / "curve.png")
    assert heat.stat().st_size > 1024 and curve.stat().st_size > 1024
    with pytest.raises(ValueError, match="no portfolio steps"):
        plot_portfolio_curve([], tmp_path / "empty.png")
