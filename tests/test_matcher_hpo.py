"""Matcher hyperparameters tuned by a real BOHB run on held-out identification accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from offline_search.hpb import run_bohb
from offline_search.matcher_hpo import OBJECTIVE, matcher_objective, matcher_space, save_fingerprint_table


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(loc=k, scale=1.0, size=(80, 16)) for k in range(3)])
    y = np.repeat(["a", "b", "c"], 80)
    return save_fingerprint_table(tmp_path / "fp.npz", x, y)


def test_spaces_follow_the_seed():
    km = matcher_space("kmeans")
    assert (km["n_clusters"].lower, km["n_clusters"].upper) == (5, 40)
    moments = matcher_space("moments")
    assert {"p", "use_kurt", "hidden", "lr", "dropout", "batch_size"} <= set(moments)
    assert moments["p"].upper == 0.4 and matcher_space("mlp")["lr"].lower == 1e-5
    with pytest.raises(ValueError):
        matcher_space("nope")


def test_objective_scores_identification(table):
    out = matcher_objective({"n_clusters": 6, "n_init": 10, "max_iter": 100}, 1.0, str(table), "kmeans",
                            test_batch_size=8, n_batches=5)
    assert out["loss"] == -out["info"]["accuracy"] and out["info"]["accuracy"] > 0.9
    small = matcher_objective({"n_clusters": 6, "n_init": 10, "max_iter": 100}, 0.25, str(table), "kmeans")
    assert small["info"]["n_fit"] < out["info"]["n_fit"]


@pytest.mark.timeout(240)
def test_bohb_tunes_the_mlp_matcher(table, tmp_path):
    trials = run_bohb(matcher_space("mlp"), OBJECTIVE, tmp_path / "run", "mhpo", min_budget=0.25, max_budget=1.0,
                      n_iterations=1, eta=2, n_workers=2,
                      objective_kwargs={"table": str(table), "matcher": "mlp", "test_batch_size": 8})
    assert {t.budget for t in trials} == {0.25, 0.5, 1.0}
    assert all("error" not in t.info for t in trials), [t.info for t in trials]
    assert max(t.info["accuracy"] for t in trials) > 0.8
