"""Matrix cells as Ray tasks: every cell missing from the observation store runs as one task on a Ray
cluster (this machine by default, nothing to start; ``address`` joins a cluster started with ``ray start``).

The driver owns the bookkeeping, as Ray's own guidance has it: a task takes what it needs as arguments
(configuration, budget, dataset path and identity) and returns an :class:`~portfolio.store.Observation`;
only the driver writes the store, so workers need no access to it. A task whose worker dies is run again
(``max_retries``); a killed driver loses nothing that reached the store, and the next run submits only
the cells still missing. Datasets are read by path: on a multi-machine cluster the collection must be at
the same path on every node (a shared or copied folder); the store stays on the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from portfolio.store import Observation, ObservationStore

MAX_RETRIES = 3
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class CellTask:
    """One cell to run: the objective's arguments (no store: the driver writes it)."""

    config: dict[str, Any]
    budget: float
    dataset: str
    kwargs: dict[str, Any]


def _run_cell(task: CellTask, threads: int) -> Observation:
    """Inside a Ray worker: torch gets the task's CPUs, then the cell runs."""
    import torch

    from offline_search.objective import observe_cell

    torch.set_num_threads(max(1, threads))
    return observe_cell(task.config, task.budget, task.dataset, **task.kwargs)


@contextmanager
def ray_session(address: str | None, n_cpus: int) -> Iterator[Any]:
    """Ray for the duration of a block: joined if already running, ``address``'s cluster, or a new local one
    with ``n_cpus`` CPUs (started here and shut down after; ``address="local"`` so that a cluster someone
    started on this machine with ``ray start`` is never joined by accident)."""
    try:
        import ray
    except ImportError:
        from metafeatures.errors import MetarecError

        raise MetarecError("--ray needs Ray on this machine: pip install 'metarec[ray]'") from None
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=max(1, n_cpus), include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def gpus_per_task(ray: Any) -> int:
    """One GPU per task when the cluster has GPUs, else none."""
    return 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0


def gather(ray: Any, refs: dict[Any, T], bar: Any, on_result: Callable[[T, R], None]) -> None:
    """Hand each task's result to ``on_result`` as it arrives, in the driver; if that raises (a cancel request,
    an error), every task still pending or running is cancelled before the exception goes on."""
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            on_result(refs[done[0]], ray.get(done[0]))
            bar.update(1)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)  # not force: a running cell is interrupted, its worker process is kept
        raise


def run_cells(tasks: Sequence[CellTask], store: ObservationStore, address: str | None = None,
              n_workers: int = 2, progress: bool = False,
              on_done: Callable[[CellTask, Observation], None] | None = None) -> int:
    """Run ``tasks`` as Ray tasks (one CPU each, one GPU each when the cluster has GPUs) and append every
    returned observation to ``store`` as it arrives; returns the number of rows added. An exception from
    ``on_done`` (e.g. a cancel request) cancels the cells not yet returned and propagates."""
    from tqdm import tqdm

    added = [0]

    def arrived(task: CellTask, obs: Observation) -> None:
        added[0] += int(store.add(obs))
        if on_done is not None:
            on_done(task, obs)

    with ray_session(address, n_workers) as ray:
        remote = ray.remote(num_cpus=1, num_gpus=gpus_per_task(ray), max_retries=MAX_RETRIES)(_run_cell)
        refs = {remote.remote(t, 1): t for t in tasks}
        with tqdm(total=len(refs), desc="cells (ray)", unit="cell", disable=not progress) as bar:
            gather(ray, refs, bar, arrived)
    return added[0]


__all__ = ["MAX_RETRIES", "CellTask", "gather", "gpus_per_task", "ray_session", "run_cells"]
