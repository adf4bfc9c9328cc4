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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from portfolio.store import Observation, ObservationStore

MAX_RETRIES = 3


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


def run_cells(tasks: Sequence[CellTask], store: ObservationStore, address: str | None = None,
              n_workers: int = 2, progress: bool = False, on_done: Callable[[Observation], None] | None = None,
              ) -> int:
    """Run ``tasks`` as Ray tasks (one CPU each, one GPU each when the cluster has GPUs) and append every
    returned observation to ``store`` as it arrives; returns the number of rows added."""
    import ray
    from tqdm import tqdm

    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=n_workers, include_dashboard=False, log_to_driver=False)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=MAX_RETRIES)(_run_cell)
        pending = [remote.remote(t, 1) for t in tasks]
        added = 0
        with tqdm(total=len(pending), desc="cells (ray)", unit="cell", disable=not progress) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                obs = ray.get(done[0])
                added += int(store.add(obs))
                bar.update(1)
                if on_done is not None:
                    on_done(obs)
        return added
    finally:
        if started:
            ray.shutdown()


__all__ = ["MAX_RETRIES", "CellTask", "run_cells"]
