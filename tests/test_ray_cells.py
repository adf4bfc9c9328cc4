"""Matrix cells as Ray tasks on a local 2-worker Ray: rows reach the store through the driver; a rerun submits
nothing (the resume); the portfolio's curves come from those rows."""

from __future__ import annotations

import pytest

from offline_search.rebuild import RebuildOptions, performance_data
from offline_search.scenario import SearchScenario
from portfolio.store import ObservationStore
from tests.fixtures.factories import make_image_folder
from tests.fixtures.ray_local import local_ray  # noqa: F401  (autouse: one local Ray for this module)

ray = pytest.importorskip("ray")



@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cells_run_as_ray_tasks_and_resume_from_the_store(tmp_path):
    from metafeatures.datasets import open_collection
    from metafeatures.summary import summarize

    col = tmp_path / "col"
    make_image_folder(col / "a", {"r": 8, "g": 8}, size=(12, 12))
    make_image_folder(col / "b", {"x": 8, "y": 8}, size=(12, 12), seed=2)
    datasets = open_collection(col)
    ids = {n: (summarize(ds).content_hash, n) for n, ds in datasets.items()}
    base = {"backbone": "lenet", "pretrained": "none", "input_size": 12, "head_width": 16, "batch_size": 16}
    candidates = {"c1": {**base, "lr": 0.01}, "c2": {**base, "lr": 0.001}}
    messages: list[str] = []
    opts = RebuildOptions(collection=col, out=tmp_path / "pf", n_workers=2, ray=True, on_progress=messages.append,
                          scenario=SearchScenario(min_budget=1, max_budget=1, backbones=("lenet",),
                                                  pretrained=("none",)))
    data = performance_data(candidates, datasets, opts, ids)
    rows = ObservationStore(opts.store_path()).observations()
    assert len(rows) == 4 and {o.status for o in rows} == {"completed"} and {o.source for o in rows} == {"matrix"}
    assert any(m.startswith("4 cells on Ray") for m in messages)
    assert not [m for m in messages if m.startswith("cell ")]  # the serial loop only read the store back
    assert data.matrix.shape == (2, 2) and all(data.curves[(c, d)].t for c in candidates for d in datasets)

    messages.clear()
    again = performance_data(candidates, datasets, opts, ids)
    assert not messages and len(ObservationStore(opts.store_path())) == 4  # nothing submitted or trained
    assert again.matrix == data.matrix


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_worker_killed_mid_cell_gets_the_cell_retried(tmp_path):
    """kill -9 of the Ray worker process while it trains a cell: Ray runs the cell again and the build completes."""
    import os
    import signal
    import threading
    import time

    import psutil

    from metafeatures.datasets import open_dataset
    from metafeatures.summary import content_hash
    from offline_search.ray_cells import CellTask, run_cells

    data = make_image_folder(tmp_path / "ds", {"r": 8, "g": 8}, size=(12, 12))
    ident = {"dataset_name": "ds", "dataset_hash": content_hash(open_dataset(data)), "group": "ds",
             "budget_kind": "seconds", "base": {"input_size": 12, "head_width": 16}, "time_budget": 1200.0,
             "t0": 60.0, "source": "matrix"}
    config = {"backbone": "lenet", "pretrained": "none", "batch_size": 16}
    tasks = [CellTask(config={**config, "lr": lr}, budget=6.0, dataset=str(data), kwargs=ident) for lr in (0.01, 0.001)]
    killed: list[int] = []

    def kill_one_running_cell() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for proc in psutil.process_iter(["pid", "cmdline"]):
                cmd = " ".join(proc.info["cmdline"] or [])
                if cmd.startswith("ray::_run_cell"):
                    time.sleep(2.0)  # mid-cell: the task has been training for a while
                    os.kill(proc.info["pid"], signal.SIGKILL)
                    killed.append(proc.info["pid"])
                    return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_one_running_cell, daemon=True)
    killer.start()
    store = ObservationStore(tmp_path / "obs.sqlite")
    assert run_cells(tasks, store, n_workers=2) == 2
    killer.join(timeout=5)
    assert killed, "no running cell was found to kill"
    rows = store.observations()
    assert len(rows) == 2 and {o.status for o in rows} == {"completed"}
