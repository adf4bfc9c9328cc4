"""BOHB searches as Ray tasks on a local 2-CPU Ray: the run logs and store rows reach the driver, a rerun
submits nothing; a cancel request during Ray cells stops the build and cancels what is still pending."""

from __future__ import annotations

import pytest

from offline_search.rebuild import RebuildOptions, search_all
from offline_search.scenario import SearchScenario
from portfolio.store import ObservationStore
from tests.fixtures.factories import make_image_folder
from tests.fixtures.ray_local import local_ray  # noqa: F401  (autouse: one local Ray for this module)

ray = pytest.importorskip("ray")



def _collection(tmp_path):
    from metafeatures.datasets import open_collection
    from metafeatures.summary import summarize

    col = tmp_path / "col"
    make_image_folder(col / "a", {"r": 6, "g": 6}, size=(12, 12))
    make_image_folder(col / "b", {"x": 6, "y": 6}, size=(12, 12), seed=2)
    datasets = open_collection(col)
    return col, datasets, {n: summarize(ds) for n, ds in datasets.items()}


BASE = {"input_size": 12, "head_width": 16, "batch_size": 16}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bohb_searches_run_as_ray_tasks_and_resume(tmp_path):
    col, datasets, summaries = _collection(tmp_path)
    messages: list[str] = []
    opts = RebuildOptions(collection=col, out=tmp_path / "pf", n_workers=2, ray=True, on_progress=messages.append,
                          base_config=BASE,
                          scenario=SearchScenario(min_budget=1, max_budget=1, n_iterations=2, backbones=("lenet",),
                                                  pretrained=("none",)))
    best = search_all(["a", "b"], datasets, summaries, opts)
    assert any(m.startswith("2 BOHB searches on Ray") for m in messages), messages
    assert not [m for m in messages if m.startswith("BOHB on ")]  # the serial pass only read the logs back
    assert set(best) == {"a", "b"} and all(t.loss is not None and t.loss < 0 for t in best.values())
    rows = ObservationStore(opts.store_path()).observations(source="bohb")
    assert sorted(o.dataset for o in rows) == ["a", "a", "b", "b"]  # 2 iterations x 1 config, written by the driver
    assert {o.dataset_hash for o in rows} == {summaries["a"].content_hash, summaries["b"].content_hash}
    for name in ("a", "b"):
        run = opts.work() / name / "bohb-0"
        assert (run / "done.json").is_file() and (run / "part-0" / "results.json").is_file()
    assert opts.tracker.searches_done == {"a/bohb-0", "b/bohb-0"}

    messages.clear()
    again = search_all(["a", "b"], datasets, summaries, opts)  # finished runs: nothing submitted, same incumbents
    assert not messages and again == best and len(ObservationStore(opts.store_path())) == 4


class Cancelled(Exception):
    """What the service's job raises from its progress callback when a cancel was requested."""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_cancel_between_ray_cells_cancels_the_pending_ones_and_the_bar_shows_an_eta(tmp_path, capsys):
    from offline_search.rebuild import performance_data

    col, datasets, summaries = _collection(tmp_path)
    ids = {n: (s.content_hash, n) for n, s in summaries.items()}
    base = {"backbone": "lenet", "pretrained": "none", **BASE}
    candidates = {"c1": {**base, "lr": 0.01}, "c2": {**base, "lr": 0.001}, "c3": {**base, "lr": 0.1}}

    def cancel_at_first_cell(progress):
        if progress.cells_done:
            raise Cancelled(f"{len(progress.cells_done)} of {progress.cells_total} cells")

    opts = RebuildOptions(collection=col, out=tmp_path / "pf", n_workers=2, ray=True, on_advance=cancel_at_first_cell,
                          progress_bar=True, scenario=SearchScenario(min_budget=1, max_budget=1, backbones=("lenet",),
                                                                     pretrained=("none",)))
    with pytest.raises(Cancelled, match="1 of 6 cells"):
        performance_data(candidates, datasets, opts, ids)
    store = ObservationStore(opts.store_path())
    assert len(store) == 1  # the other five were cancelled: nothing reached the store after the request
    capsys.readouterr()

    opts.on_advance = None  # the job resumed: only the five missing cells are submitted, with a bar and its ETA
    messages: list[str] = []
    opts.on_progress = messages.append
    data = performance_data(candidates, datasets, opts, ids)
    assert any(m.startswith("5 cells on Ray") for m in messages) and len(store) == 6
    assert data.matrix.shape == (3, 2) and opts.tracker.cells_done == {(c, d, 0) for c in candidates for d in datasets}
    bar = capsys.readouterr().err
    assert "cells (ray): 100%" in bar and "5/5 [" in bar and "<00:00" in bar, bar


@pytest.mark.timeout(180)
def test_a_search_task_resumes_from_the_logs_it_is_given(tmp_path):
    """Off Ray: a task given the logs of one finished iteration runs only the second, in a new session."""
    from offline_search.hpb import export_run, import_run, read_trials, run_bohb
    from offline_search.ray_search import SearchTask, run_search_task
    from tests.test_bohb import toy_space

    common = dict(min_budget=1, max_budget=1, eta=3, n_workers=1)
    first = run_bohb(toy_space(), "tests.fixtures.objectives:quadratic", tmp_path / "one", "r", n_iterations=1,
                     **common)
    task = SearchTask(name="toy", run_dir=tmp_path / "driver", run_id="r", space=toy_space(),
                      objective="tests.fixtures.objectives:quadratic", objective_kwargs={}, n_iterations=2, seed=0,
                      previous=export_run(tmp_path / "one"), min_budget=1, max_budget=1, eta=3,
                      with_store=False)
    out = run_search_task(task)
    assert set(out.logs) == {"part-1"} and out.observations == ()  # the toy objective writes no store rows
    import_run(tmp_path / "one", out.logs)
    trials = read_trials(tmp_path / "one")
    assert trials[: len(first)] == first and len({t.config_id[0] for t in trials}) == 2
    with pytest.raises(Exception, match="not a BOHB run log"):
        import_run(tmp_path / "x", {"../part-0": {"configs.json": ""}})


def test_one_gpu_per_task_when_the_cluster_has_gpus():
    """No GPU here: a stand-in for Ray's cluster view (named as such) checks the rule itself."""
    from offline_search.ray_cells import gpus_per_task

    class FakeRayWithGpus:
        def cluster_resources(self):
            return {"CPU": 8.0, "GPU": 2.0}

    assert gpus_per_task(FakeRayWithGpus()) == 1 and gpus_per_task(ray) == 0
