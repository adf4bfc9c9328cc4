"""The service's rebuild job: its progress is the share of work done (BOHB runs and cells), a cancel request
lands between two cells, and the requeued job resumes without training a stored cell again."""

from __future__ import annotations

import pytest

from offline_search.hpb import bohb_cost
from offline_search.progress import RebuildProgress
from portfolio.store import ObservationStore
from service.jobs import JobStopped, run_rebuild_job
from tests.fixtures.factories import make_image_folder


def test_bohb_cost_follows_hpbandsters_schedule():
    assert bohb_cost(1, 1, 3, 2) == 2.0  # one rung: one full-budget evaluation per iteration
    # budgets 1/3/9, eta 3: iteration 0 = 9@1 + 3@3 + 1@9 = 27 epochs, iteration 1 = 3@3 + 1@9 (s=1: n0=3) ...
    assert bohb_cost(1, 9, 3, 1) == pytest.approx(27 / 9)
    assert bohb_cost(1, 9, 3, 3) == pytest.approx((27 + 18 + 27) / 9)  # ... iteration 2 = 3@9
    progress = RebuildProgress(search_weight=2.0, searches_total=2, cells_total=6)
    progress.searches_done.add("a/bohb-0")
    progress.cells_done.update({("c", "a", 0), ("c", "a", 0)})  # a cell read twice counts once
    assert progress.fraction() == pytest.approx(3 / 10) and progress.to_dict()["cells_done"] == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_rebuild_job_reports_the_true_fraction_and_stops_between_cells(tmp_path):
    for name, seed in (("one", 0), ("two", 1)):
        make_image_folder(tmp_path / "col" / name, {"a": 6, "b": 6}, size=(12, 12), seed=seed)
    params = {"collection_path": str(tmp_path / "col"), "datasets": None, "n_workers": 1,
              "scenario": {"n_iterations": 1, "min_budget": 1, "max_budget": 1, "backbones": ["lenet"],
                           "pretrained": ["none"]},
              "rebuild_options": {"fingerprint_backbone": "resnet18", "fingerprint_weights": "random",
                                  "fingerprint_resolution": 32, "n_samples": 16, "matchers": ["mlp"],
                                  "include_default": False, "base_config": {"input_size": 12, "head_width": 16}}}
    fractions: list[float] = []

    def report(fraction, point):
        fractions.append(fraction)

    out = tmp_path / "job"
    # 2 BOHB runs (1 iteration at the full budget: weight 1) + a pool of 2 incumbents x 2 datasets = 6 units
    with pytest.raises(JobStopped, match="after 2 of 2 BOHB runs and 2 of 4 cells"):
        run_rebuild_job(params, out, None, report, lambda: len(fractions) >= 4, tmp_path)
    assert fractions == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6])
    store = ObservationStore(out / "portfolio.observations.sqlite")
    # cell 1 is dataset one's incumbent on dataset one: its BOHB row is read back; cell 2 was trained
    assert len(store.observations(source="bohb")) == 2 and len(store.observations(source="matrix")) == 1

    fractions.clear()  # the requeued job: resumes, trains only the missing cell, and publishes
    done = run_rebuild_job(params, out, _factory(tmp_path), report, lambda: False, tmp_path)
    assert done["status"] == "succeeded" and done["result"]["resumed"] is True
    assert done["result"]["work"] == {"searches_done": 2, "searches_total": 2, "cells_done": 4, "cells_total": 4,
                                      "search_weight": 1.0, "fraction": 1.0}
    assert fractions == sorted(fractions) and fractions[-1] == 0.99  # 1.0 only once the job is finished
    assert len(store.observations(source="matrix")) == 2 and len(store) == 4  # one more cell trained


def _factory(tmp_path):
    from service.db import make_engine, session_factory

    return session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))


def test_the_workers_ray_address_setting():
    """``METAREC_RAY_ADDRESS``: empty is unset (a local Ray per job), an over-long value is refused at start."""
    from pydantic import ValidationError

    from service.settings import Settings

    assert Settings(ray_address="").ray_address is None
    assert Settings(ray_address="10.0.0.5:6379").ray_address == "10.0.0.5:6379"
    with pytest.raises(ValidationError, match="ray_address"):
        Settings(ray_address="h" * 600)
