"""BOHB searches as Ray tasks: one task per (dataset, run) holds a whole hpbandster session (nameserver,
master and worker processes, all on loopback inside the task), so searches of different datasets run side by
side on a Ray cluster and no Pyro port has to cross machines.

The driver keeps what lasts, as for cells (:mod:`offline_search.ray_cells`): the task gets the run's logs
so far (resume) and the dataset's rows of the observation store (so a configuration already evaluated is
read back, not trained), runs in a scratch folder, and returns the new session's logs and the new rows;
the driver writes them into the run directory and the store. A task whose worker dies runs again from the
same logs (``max_retries``). hpbandster stays inside :mod:`offline_search.hpb`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline_search.hpb import RunLogs, export_run, import_run, mark_done
from offline_search.ray_cells import MAX_RETRIES, gather, gpus_per_task, ray_session
from portfolio.store import Observation, ObservationStore


@dataclass(frozen=True)
class SearchTask:
    """One BOHB run to do on a Ray node: everything :func:`offline_search.hpb.run_bohb` needs except a store."""

    name: str
    run_dir: Path  # on the driver: where the logs are written back (the task never reads it)
    run_id: str
    space: Any  # ConfigSpace ConfigurationSpace (built on the driver, so every node searches the same space)
    objective: str
    objective_kwargs: dict[str, Any]
    min_budget: float
    max_budget: float
    n_iterations: int
    eta: float
    seed: int
    previous: RunLogs = field(default_factory=dict)
    known: tuple[Observation, ...] = ()
    n_workers: int = 1
    with_store: bool = True  # the objective takes ``store=PATH`` (the fine-tune objective does)


@dataclass(frozen=True)
class SearchOutcome:
    """What a search task sends back: the logs of its session(s) and the rows it added."""

    logs: RunLogs
    observations: tuple[Observation, ...]


def _key(o: Observation) -> tuple[Any, ...]:
    return (o.dataset_hash, o.config_id, o.budget, o.budget_kind, o.seed, o.time_budget, o.t0)


def run_search_task(task: SearchTask) -> SearchOutcome:
    """Inside a Ray worker (or anywhere): the BOHB run in a scratch folder, resumed from ``task.previous``."""
    from offline_search.hpb import run_bohb

    with tempfile.TemporaryDirectory(prefix="metarec-search-") as tmp:
        run_dir = Path(tmp) / "run"
        import_run(run_dir, task.previous)
        store = ObservationStore(Path(tmp) / "observations.sqlite")
        for obs in task.known:
            store.add(obs)
        kwargs = {**task.objective_kwargs, **({"store": str(store.path)} if task.with_store else {})}
        run_bohb(task.space, task.objective, run_dir, task.run_id, min_budget=task.min_budget,
                 max_budget=task.max_budget, n_iterations=task.n_iterations, eta=task.eta, n_workers=task.n_workers,
                 seed=task.seed, objective_kwargs=kwargs, resume=True, worker_threads=True)
        known = {_key(o) for o in task.known}
        logs = {part: files for part, files in export_run(run_dir).items() if part not in task.previous}
        return SearchOutcome(logs=logs, observations=tuple(o for o in store.observations() if _key(o) not in known))


def run_searches(tasks: Sequence[SearchTask], store: ObservationStore, address: str | None = None,
                 n_workers: int = 2, progress: bool = False,
                 on_done: Callable[[SearchTask], None] | None = None) -> None:
    """Run ``tasks`` as Ray tasks (``task.n_workers`` CPUs each, one GPU each when the cluster has GPUs); as
    each returns, its logs land in its run directory (marked finished) and its rows in ``store``. An exception
    from ``on_done`` (a cancel request) cancels the searches not yet returned and propagates."""
    from tqdm import tqdm

    def arrived(task: SearchTask, outcome: SearchOutcome) -> None:
        import_run(task.run_dir, outcome.logs)
        for obs in outcome.observations:
            store.add(obs)
        mark_done(task.run_dir, task.n_iterations)
        if on_done is not None:
            on_done(task)

    with ray_session(address, n_workers) as ray:
        gpus = gpus_per_task(ray)
        remote = ray.remote(max_retries=MAX_RETRIES)(run_search_task)
        refs = {remote.options(num_cpus=max(1, t.n_workers), num_gpus=gpus).remote(t): t for t in tasks}
        with tqdm(total=len(refs), desc="BOHB searches (ray)", unit="search", disable=not progress) as bar:
            gather(ray, refs, bar, arrived)


__all__ = ["SearchOutcome", "SearchTask", "run_search_task", "run_searches"]
