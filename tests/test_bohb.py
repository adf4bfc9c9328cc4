"""A real BOHB run (hpbandster, Pyro4 nameserver on loopback, 2 worker processes) on toy objectives.

Each test has a hard timeout: before the serpent fix, hpbandster on numpy 2 hangs silently.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ConfigSpace as CS
import numpy as np
import pytest

from metafeatures.errors import ArtifactError
from offline_search.hpb import (
    DONE_NAME,
    read_trials,
    register_numpy_with_serpent,
    run_bohb,
    to_builtins,
    warm_workers,
)


def toy_space() -> CS.ConfigurationSpace:
    space = CS.ConfigurationSpace(seed=0)
    space.add([CS.UniformFloatHyperparameter("lr", 1e-5, 0.5, log=True),
               CS.UniformFloatHyperparameter("dropout", 0.01, 0.99)])
    return space


def test_serpent_writes_numpy_scalars_as_builtins():
    import serpent

    register_numpy_with_serpent()
    data = serpent.loads(serpent.dumps({"a": np.float64(3.0), "b": np.int64(2), "c": np.str_("x"),
                                        "d": np.bool_(True)}))
    assert data == {"a": 3.0, "b": 2, "c": "x", "d": True}
    assert to_builtins({"x": [np.float32(1.5)], "y": np.arange(2)}) == {"x": [1.5], "y": [0, 1]}


@pytest.mark.timeout(180)
def test_real_bohb_with_two_worker_processes(tmp_path):
    trials = run_bohb(toy_space(), "tests.fixtures.objectives:quadratic", tmp_path / "run", "toy",
                      min_budget=1, max_budget=9, n_iterations=3, eta=3, n_workers=2)
    assert len(trials) >= 20 and {t.budget for t in trials} == {1.0, 3.0, 9.0}
    best = min((t for t in trials if t.budget == 9.0), key=lambda t: t.loss)
    assert best.loss < 1.0 and best.info == {"budget_seen": 9, "tag": "ok"}
    assert isinstance(best.config["lr"], float)
    logged = [json.loads(line) for line in (tmp_path / "run" / "part-0" / "results.json").read_text().splitlines()]
    assert len(logged) == len(trials)
    assert (tmp_path / "run" / "part-0" / "configs.json").is_file() and (tmp_path / "run" / "done.json").is_file()


@pytest.mark.timeout(180)
def test_warm_workers_serve_consecutive_searches_and_stop_at_the_end(tmp_path):
    # a rebuild runs one search per dataset: inside warm_workers() the same two processes (which imported
    # torch once) serve every search, instead of two freshly spawned ones per search
    with warm_workers(preload=()) as pool:
        pids = []
        for k in range(3):
            trials = run_bohb(toy_space(), "tests.fixtures.objectives:with_pid", tmp_path / f"run{k}", f"warm{k}",
                              min_budget=1, max_budget=1, n_iterations=1, n_workers=2)
            pids.append({t.info["pid"] for t in trials})
        procs = [w.proc for w in pool._workers]
        assert len(procs) == 2 and all(p.is_alive() for p in procs)
    assert set().union(*pids) <= {p.pid for p in procs} and os.getpid() not in set().union(*pids)
    assert not any(p.is_alive() for p in procs)  # stopped at the end of the block
    # outside the block each search spawns its own workers again
    trials = run_bohb(toy_space(), "tests.fixtures.objectives:with_pid", tmp_path / "cold", "cold",
                      min_budget=1, max_budget=1, n_iterations=1, n_workers=2)
    assert not {t.info["pid"] for t in trials} & {p.pid for p in procs}


@pytest.mark.timeout(180)
def test_failures_become_bad_results(tmp_path):
    trials = run_bohb(toy_space(), "tests.fixtures.objectives:sometimes_fails", tmp_path / "run", "fails",
                      min_budget=1, max_budget=3, n_iterations=2, eta=3, n_workers=2)
    failed = [t for t in trials if t.info.get("error")]
    assert failed and all(t.loss == 2.0 and "simulated out of memory" in t.info["error"] for t in failed)
    assert any(t.loss is not None and np.isfinite(t.loss) for t in trials)


def _key(trial):
    return (round(trial.config["lr"], 12), round(trial.config["dropout"], 12), trial.budget)


@pytest.mark.timeout(240)
def test_finished_run_is_a_noop_and_a_killed_run_resumes(tmp_path):
    run = tmp_path / "run"
    kwargs = dict(min_budget=1, max_budget=9, eta=3, n_workers=2)
    first = run_bohb(toy_space(), "tests.fixtures.objectives:quadratic", run, "r1", n_iterations=1, **kwargs)
    again = run_bohb(toy_space(), "tests.fixtures.objectives:quadratic", run, "r1", n_iterations=1, **kwargs)
    assert again == first and not (run / "part-1").exists()  # finished: nothing re-run
    (run / DONE_NAME).unlink()  # as if the rebuild had been killed after its first iteration
    with pytest.raises(ArtifactError, match="resume it or overwrite it"):
        run_bohb(toy_space(), "tests.fixtures.objectives:quadratic", run, "r1", n_iterations=3, **kwargs)
    resumed = run_bohb(toy_space(), "tests.fixtures.objectives:quadratic", run, "r1", n_iterations=3,
                       resume=True, **kwargs)
    new = resumed[len(first):]
    assert resumed[: len(first)] == first and new
    assert not {_key(t) for t in first} & {_key(t) for t in new}  # no finished evaluation was redone
    iterations = {t.config_id[0] for t in resumed}
    assert len(iterations) == 3 and read_trials(run) == resumed
    fresh = run_bohb(toy_space(), "tests.fixtures.objectives:quadratic", run, "r1", n_iterations=1,
                     overwrite=True, **kwargs)
    assert len(fresh) == len(first) and not (run / "part-1").exists()


@pytest.mark.timeout(300)
def test_bohb_on_a_tiny_real_finetune(tmp_path):
    """Two worker processes fine-tune lenet configurations on a real (tiny) image dataset."""
    from finetune.space import build_search_space
    from tests.fixtures.factories import make_image_folder

    data = make_image_folder(tmp_path / "ds", {"r": 12, "g": 12, "b": 12}, size=(16, 16))
    space = build_search_space(backbones=("lenet",), pretrained=("none",), strategies=("full",))
    trials = run_bohb(space, "offline_search.objective:finetune_objective", tmp_path / "run", "ft",
                      min_budget=1, max_budget=3, n_iterations=1, eta=3, n_workers=2,
                      objective_kwargs={"dataset": str(data), "budget_kind": "epochs", "score": "final_nauc",
                                        "base": {"input_size": 16, "head_width": 32}})
    assert {t.budget for t in trials} == {1.0, 3.0} and len(trials) >= 4
    assert all("error" not in t.info for t in trials), [t.info for t in trials]  # incl. concurrent cache writes
    assert all(-1.0 <= t.loss <= 1.0 and t.info["status"] == "completed" for t in trials)
    assert all(t.info["final_nauc"] == pytest.approx(-t.loss) for t in trials)


@pytest.mark.timeout(240)
def test_remote_workers_join_through_the_cli(tmp_path):
    """The master runs without local workers; two `metarec search worker` processes join on loopback."""
    import subprocess
    import sys
    import threading
    import time

    run = tmp_path / "run"
    out: dict = {}

    def master() -> None:
        out["trials"] = run_bohb(toy_space(), "tests.fixtures.objectives:quadratic", run, "remote", min_budget=1,
                                 max_budget=3, n_iterations=2, eta=3, n_workers=0)

    thread = threading.Thread(target=master, daemon=True)
    thread.start()
    task = run / "worker.json"
    deadline = time.monotonic() + 60
    while not task.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert json.loads(task.read_text())["run_id"] == "remote"
    workers = [subprocess.Popen([sys.executable, "-m", "metarec.cli", "search", "worker", "--task", str(task),
                                 "--worker-id", str(i)]) for i in range(2)]
    thread.join(timeout=180)
    for w in workers:
        assert w.wait(timeout=60) == 0  # workers exit cleanly when the master shuts them down
    assert not thread.is_alive() and len(out["trials"]) >= 6


@pytest.mark.timeout(120)
def test_a_worker_exits_when_its_nameserver_is_gone(tmp_path):
    """A worker the dispatcher never discovered (it joined in the master's last seconds) must not wait forever."""
    import subprocess
    import sys
    import time

    import hpbandster.core.nameserver as hpns

    ns = hpns.NameServer(run_id="orphan", host="127.0.0.1", port=0)
    host, port = ns.start()
    code = ("import offline_search.hpb as h; h.NAMESERVER_CHECK_S = 0.5; "
            f"h.worker_main('tests.fixtures.objectives:quadratic', 'orphan', {host!r}, {port}, 0)")
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1])
    try:
        time.sleep(3)  # registered with the nameserver; no master ever contacts it
        assert worker.poll() is None
        ns.shutdown()
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
