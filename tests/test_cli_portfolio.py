"""``metarec portfolio show`` and ``metarec recommend`` on a small portfolio fitted on real fingerprints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from metafeatures.datasets import open_dataset
from metafeatures.fingerprint import Fingerprinter
from metafeatures.summary import content_hash, summarize
from metarec.cli import main
from metarec.commands.portfolio import default_portfolio_dir
from tests.fixtures.cli import fails, run_json
from tests.fixtures.factories import make_image_folder
from tests.fixtures.portfolios import INCUMBENTS, fit_matchers, save_test_portfolio

N_SAMPLES = 24
# three tiny datasets that differ in tint, size and colour; 24 images each, so n_samples=24 takes them all
DATASETS = {
    "tinted": {"classes": {"a": 12, "b": 12}, "size": (16, 20)},
    "grey": {"classes": {"x": 8, "y": 8, "z": 8}, "size": (28, 28), "grey": True, "seed": 1},
    "large": {"classes": {"p": 12, "q": 12}, "size": (40, 36), "seed": 2},
}
NAMES = tuple(DATASETS)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Datasets on disk, the random-ResNet18 fingerprinter and portfolios fitted on its real fingerprints.

    Module-scoped, so it runs before the per-test private cache is set: nothing here touches the cache.
    """
    root = tmp_path_factory.mktemp("cli-portfolio")
    paths = {name: make_image_folder(root / "data" / name, **kw) for name, kw in DATASETS.items()}
    fingerprinter = Fingerprinter("resnet18", "random", resolution=32)
    summaries, features = [], {}
    for name, path in paths.items():
        ds = open_dataset(path)
        summaries.append(summarize(ds))
        features[name] = fingerprinter.fingerprint(ds, content_hash(ds), n_samples=N_SAMPLES, seed=0,
                                                   use_cache=False).features
    matchers = fit_matchers(features, mlp={"hidden": 32, "max_epochs": 30})
    spec = fingerprinter.spec
    other = dataclasses.replace(spec, weights_sha256="0" * 64)  # same identity, another weights hash
    return {
        "paths": paths, "spec": spec, "fingerprinter": fingerprinter, "root": root,
        "portfolio": save_test_portfolio(root / "pf", summaries, spec, matchers),
        "other": save_test_portfolio(root / "pf-other", summaries, other, matchers),
        "summaries": summaries, "matchers": matchers,
    }


# ------------------------------------------------------------------------------------------ portfolio show


def test_show_json_contract(world: dict, capsys: pytest.CaptureFixture[str]):
    out = run_json(capsys, ["portfolio", "show", str(world["portfolio"]), "--json"])
    for key in ("version", "entries", "reduced_portfolio", "fingerprint_spec", "performance_matrix", "matchers",
                "provenance", "reduced_portfolio_curve"):
        assert key in out
    assert [e["dataset"] for e in out["entries"]] == list(NAMES)
    assert out["reduced_portfolio"] == ["large", "tinted"]
    assert out["fingerprint_spec"] == world["spec"].to_dict()
    assert set(out["matchers"]) == {"mlp", "kmeans"}
    assert out["version"].startswith("demo-")


def test_show_human_table_and_default_dir(world: dict, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("METAREC_PORTFOLIO_DIR", str(world["portfolio"]))
    assert default_portfolio_dir() == world["portfolio"]
    assert main(["portfolio", "show"]) == 0
    text = capsys.readouterr().out
    assert "dataset" in text and "pretrained" in text and "budget" in text
    for name in NAMES:
        assert name in text
    assert "reduced portfolio (2): large, tinted" in text
    monkeypatch.delenv("METAREC_PORTFOLIO_DIR")
    assert default_portfolio_dir() == Path(__file__).resolve().parents[1] / "portfolios" / "demo"


def test_missing_portfolio_says_how_to_build_one(tmp_path: Path, world: dict, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch):
    err = fails(capsys, ["portfolio", "show", str(tmp_path / "nope")])
    assert "no such directory" in err and "metarec rebuild --collection DIR --out DIR" in err
    monkeypatch.setenv("METAREC_PORTFOLIO_DIR", str(tmp_path / "also-nope"))
    err = fails(capsys, ["recommend", str(world["paths"]["grey"]), "--json"])
    assert "also-nope" in err and "metarec rebuild" in err and "METAREC_PORTFOLIO_DIR" in err
    (tmp_path / "empty").mkdir()
    err = fails(capsys, ["recommend", str(world["paths"]["grey"]), "--portfolio", str(tmp_path / "empty")])
    assert "portfolio.json" in err and "metarec rebuild" in err


# ------------------------------------------------------------------------------------------ recommend


@pytest.mark.parametrize("name", NAMES)
def test_recommend_json_contract_and_top_neighbour(world: dict, capsys: pytest.CaptureFixture[str], name: str):
    out = run_json(capsys, ["recommend", str(world["paths"][name]), "--portfolio", str(world["portfolio"]),
                            "--n-samples", str(N_SAMPLES), "--top-k", "3", "--json"])
    for key in ("configuration", "neighbors", "portfolio_version", "matcher", "fingerprint_spec", "best_match",
                "elapsed_ms"):
        assert key in out
    assert out["best_match"] == name == out["neighbors"][0]["dataset"]
    assert out["configuration"] == INCUMBENTS[NAMES.index(name)].to_dict()
    assert len(out["neighbors"]) == 3 and set(out["neighbors"][0]) == {"dataset", "score", "distance"}
    scores = [n["score"] for n in out["neighbors"]]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0)
    assert out["matcher"] == "mlp" and out["fingerprint_spec"] == world["spec"].to_dict()
    assert out["portfolio_version"].startswith("demo-") and out["elapsed_ms"] > 0


def test_recommend_reduced_and_kmeans(world: dict, capsys: pytest.CaptureFixture[str]):
    base = ["recommend", str(world["paths"]["grey"]), "--portfolio", str(world["portfolio"]),
            "--n-samples", str(N_SAMPLES), "--json"]
    # reduced portfolio [large, tinted]: on "grey", large's incumbent scores 0.7 > tinted's 0.5
    out = run_json(capsys, [*base, "--reduced", "--top-k", "1"])
    assert out["best_match"] == "grey" and out["incumbent_of"] == "large" and out["restricted_to_reduced"]
    assert out["configuration"] == INCUMBENTS[2].to_dict() and len(out["neighbors"]) == 1
    out = run_json(capsys, [*base, "--matcher", "kmeans"])
    assert out["matcher"] == "kmeans" and out["neighbors"][0]["dataset"] in NAMES


def test_recommend_human_output(world: dict, capsys: pytest.CaptureFixture[str]):
    assert main(["recommend", str(world["paths"]["large"]), "--portfolio", str(world["portfolio"]),
                 "--n-samples", str(N_SAMPLES)]) == 0
    text = capsys.readouterr().out
    assert "most like 'large'" in text and "backbone: efficientnet_b0" in text and "neighbour" in text


def test_recommend_refuses_a_spec_mismatch(world: dict, capsys: pytest.CaptureFixture[str]):
    err = fails(capsys, ["recommend", str(world["paths"]["tinted"]), "--portfolio", str(world["other"]), "--json"])
    assert "spec mismatch" in err and "weights_sha256" in err and "portfolio.json" in err


def test_recommend_unknown_matcher_lists_available(world: dict, capsys: pytest.CaptureFixture[str]):
    err = fails(capsys, ["recommend", str(world["paths"]["tinted"]), "--portfolio", str(world["portfolio"]),
                         "--matcher", "moments"])
    assert "moments" in err and "available: kmeans, mlp" in err


def test_recommend_bad_arguments(world: dict, capsys: pytest.CaptureFixture[str]):
    base = ["recommend", str(world["paths"]["tinted"]), "--portfolio", str(world["portfolio"])]
    assert "top_k" in fails(capsys, [*base, "--top-k", "0"])
    assert "no such file" in fails(capsys, ["recommend", str(world["root"] / "missing"),
                                            "--portfolio", str(world["portfolio"])])


def test_recommend_with_a_weights_file(world: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A portfolio made with a state-dict file needs --weights PATH; with it, the hash is checked and it works."""
    weights = tmp_path / "backbone.pt"
    torch.save(world["fingerprinter"].model.state_dict(), weights)
    file_spec = Fingerprinter("resnet18", str(weights), resolution=32).spec
    assert file_spec.weights == "file:backbone.pt"
    pf = save_test_portfolio(tmp_path / "pf", world["summaries"], file_spec, world["matchers"])
    base = ["recommend", str(world["paths"]["grey"]), "--portfolio", str(pf), "--n-samples", str(N_SAMPLES), "--json"]
    err = fails(capsys, base)
    assert "backbone.pt" in err and "--weights PATH" in err
    out = run_json(capsys, [*base, "--weights", str(weights)])
    assert out["best_match"] == "grey" and out["fingerprint_spec"]["weights"] == "file:backbone.pt"
    other = tmp_path / "other.pt"
    torch.save(Fingerprinter("resnet18", "random", resolution=32, seed=1).model.state_dict(), other)
    err = fails(capsys, [*base, "--weights", str(other)])
    assert "spec mismatch" in err and "weights" in err


def test_the_cli_names_the_same_portfolio_variable_as_the_library():
    from metarec.commands import portfolio as cli_portfolio
    from portfolio import defaults

    assert cli_portfolio.PORTFOLIO_DIR_ENV == defaults.PORTFOLIO_DIR_ENV
