"""The offline rebuild end to end on two tiny datasets: real BOHB, real fine-tunes, a loadable portfolio."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metafeatures.datasets import open_dataset
from metafeatures.fingerprint import Fingerprinter
from metafeatures.summary import content_hash
from offline_search.rebuild import RebuildOptions, rebuild
from offline_search.scenario import SearchScenario
from portfolio.artifact import load_portfolio
from portfolio.recommender import Recommender
from portfolio.store import ObservationStore, config_id, performance_view
from tests.fixtures.factories import make_image_folder, make_npz


@pytest.mark.timeout(600)
def test_rebuild_resume_and_recommend(tmp_path):
    col = tmp_path / "col"
    make_image_folder(col / "tinted", {"r": 12, "g": 12, "b": 12}, size=(16, 16))
    make_npz(col / "noise.npz", n=36, shape=(12, 12), n_classes=2)
    scenario = SearchScenario(n_iterations=2, min_budget=1, max_budget=1, backbones=("lenet",),
                              pretrained=("none",))
    messages: list[str] = []
    opts = RebuildOptions(collection=col, out=tmp_path / "portfolio", scenario=scenario, n_workers=2,
                          fingerprint_backbone="resnet18", fingerprint_weights="random", fingerprint_resolution=32,
                          n_samples=24, matchers=("kmeans", "mlp"), base_config={"input_size": 16, "head_width": 32},
                          on_progress=messages.append, n_sobol=1, second_seed_fraction=0.1)
    path = rebuild(opts)
    loaded = load_portfolio(path)
    assert sorted(loaded.portfolio.datasets) == ["noise", "tinted"]
    assert loaded.portfolio.provenance["fingerprint_sampling"] == {"n_samples": 24, "seed": 0}
    assert (path / "portfolio.json").is_file() and (path / "performance_matrix.png").is_file()
    assert (path / "batch_size_curve.png").stat().st_size > 1000  # seed 001 Fig. 5 for this portfolio

    # every fine-tune is a row of the observation store beside the portfolio: BOHB trials and the cells of the
    # candidate pool (2 incumbents + seed 000's default + 1 Sobol point) on both datasets, 10 % with a second seed
    store = ObservationStore(opts.store_path())
    rows = store.observations()
    assert opts.store_path() == tmp_path / "portfolio.observations.sqlite"
    assert {o.source for o in rows} == {"bohb", "matrix"}
    assert {o.group for o in rows} == {"noise", "tinted"} and all(o.dataset_hash for o in rows)
    sources = [c.source for c in loaded.candidates]
    assert {"incumbent", "default", "space_filling"} <= set(sources) and len(sources) >= 3
    default = next(c for c in loaded.candidates if c.source == "default").configuration
    assert (default["backbone"], default["pretrained"], default["strategy"]) == ("mobilenet_v2", "imagenet", "full")
    assert loaded.matrix.shape == (len(sources), 2)
    # the store's view of the pool: every cell there (the incumbents' own cells are their BOHB rows), 10 % twice
    hashes = {e.dataset: e.summary["content_hash"] for e in loaded.portfolio.entries}
    view = performance_view(store, [config_id(c.configuration) for c in loaded.candidates], hashes, budget=1.0,
                            budget_kind="epochs", time_budget=1200.0, t0=60.0)
    n_cells = len(sources) * 2
    assert not view.missing and int(view.n_seeds.sum()) == n_cells + math.ceil(0.1 * n_cells)
    assert all(view.curve(config_id(c.configuration), d) for c in loaded.candidates for d in hashes)
    # the matrix is the store's view: a cell run with two seeds scores the mean of both
    cols = [list(hashes).index(d) for d in loaded.matrix.datasets]
    assert np.allclose(loaded.matrix.scores, view.scores[:, cols], atol=1e-4, equal_nan=True)
    assert (view.n_seeds[:, cols] == 2).any()
    noise = loaded.portfolio.provenance["seed_noise"]
    assert noise["cells_with_two_seeds"] >= 1 and "mean_abs_diff" in noise

    # a second run resumes: no BOHB evaluation and no cell is computed again (the store has them all)
    parts = sorted(p.name for p in opts.work().rglob("part-*"))
    messages.clear()
    opts.resume = True
    rebuild(opts)
    assert sorted(p.name for p in opts.work().rglob("part-*")) == parts
    assert len(store) == len(rows)
    assert not [m for m in messages if m.startswith(("evaluate incumbent", "cell "))]

    # the recommender names a known dataset from its own fingerprints
    fpr = Fingerprinter("resnet18", "random", resolution=32)
    ds = open_dataset(col / "tinted")
    features = fpr.fingerprint(ds, content_hash(ds), n_samples=24).features
    rec = Recommender(load_portfolio(path), matcher="mlp").recommend(features)
    best_on_tinted = loaded.candidates[int(loaded.matrix.scores[:, loaded.matrix.dataset_index("tinted")].argmax())]
    assert rec.best_match == "tinted" and rec.configuration["backbone"] in {"lenet", best_on_tinted.configuration[
        "backbone"]}
    loaded = load_portfolio(path)
    assert loaded.performance.has_curves and all(c.cost is not None for c in loaded.candidates)
    assert loaded.selection.novelty is None  # two known datasets are too few to calibrate by leave-one-out

    # `metarec portfolio update`: the same known datasets and incumbents plus the seed-000 default, every cell
    # with its curve, into a new version (its resume is the store's: tests/test_store.py); the source's store is
    # copied into the new one first, so no cell is trained again
    from offline_search.update import update_portfolio

    messages.clear()
    new = load_portfolio(update_portfolio(path, tmp_path / "pf2", collection=col, on_progress=messages.append))
    assert [c.id for c in new.candidates] == ["noise", "tinted", "seed000_default"]
    assert new.matrix.shape == (3, 2) and new.portfolio.provenance["updated_from"] == loaded.version
    assert not [m for m in messages if m.startswith("cell ")]
    assert any(m.endswith("copied into pf2.observations.sqlite") for m in messages), messages
    assert len(ObservationStore(tmp_path / "pf2.observations.sqlite")) == len(store)


@pytest.mark.timeout(600)
def test_rebuild_command(tmp_path, capsys):
    import json

    from metarec.cli import main

    col = tmp_path / "col"
    make_image_folder(col / "a", {"r": 10, "g": 10}, size=(16, 16))
    make_image_folder(col / "b", {"x": 10, "y": 10}, size=(24, 24), grey=True, seed=3)
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"input_size": 16, "head_width": 32}))
    argv = ["rebuild", "--collection", str(col), "--out", str(tmp_path / "pf"), "--n-iterations", "1",
            "--min-budget", "1", "--max-budget", "1", "--backbones", "lenet", "--pretrained", "none",
            "--fingerprint-backbone", "resnet18", "--fingerprint-weights", "random", "--fingerprint-resolution", "32",
            "--n-samples", "16", "--base-config", str(base), "--matcher-hpo-iterations", "1", "--no-default-candidate",
            "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["datasets"] == ["a", "b"] and out["version"].startswith("demo-")
    assert main(["rebuild", "--collection", str(col), "--out", str(tmp_path / "pf2"), "--datasets", "a,zz"]) == 2
    assert "no dataset(s) ['zz']" in capsys.readouterr().err
    assert main(argv[:-1] + ["--sobol", "-1"]) == 2
    assert "n_sobol" in capsys.readouterr().err
