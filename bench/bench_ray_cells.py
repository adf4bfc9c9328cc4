"""Matrix cells per hour on a local Ray with 2 workers against 1 (issue 12 §5; goal >= 1.7x: cells are
independent, so only the machine limits the speed-up).

Each round runs the same cells (``--configs`` lenet/resnet18 configurations x ``--datasets`` generated
datasets) once on a 1-CPU Ray and once on a 2-CPU Ray, through the rebuild's own path
(:func:`offline_search.ray_cells.run_cells`, a fresh store each time so nothing is read back); the order of
the arms alternates between rounds (the machine's speed drifts). Ray's start and the workers' first imports
are outside the timing (a warm-up task per worker). Budgets are epochs, not seconds: a wall-clock budget
makes every cell last the same time whatever the machine does, so cells per hour would only count workers.
One torch thread per cell.

    .venv/bin/python bench/bench_ray_cells.py --quick    # tiny run, proves the script works
    .venv/bin/python bench/bench_ray_cells.py            # full: 8 configs x 2 datasets, 3 epochs, 3 rounds
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py
os.environ["OMP_NUM_THREADS"] = "1"

import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_ray_search import make_dataset  # noqa: E402

from offline_search.ray_cells import CellTask, run_cells  # noqa: E402
from portfolio.store import ObservationStore  # noqa: E402

FULL = ("--configs 8 --datasets 2 --per-class 150 --epochs 3 --rounds 3")


def cells(datasets: list[Path], n_configs: int, epochs: float) -> list[CellTask]:
    """``n_configs`` configurations (lenet and resnet18 from scratch, a few learning rates) on every dataset."""
    from metafeatures.datasets import open_dataset
    from metafeatures.summary import content_hash

    configs = [{"backbone": ("lenet", "resnet18")[k % 2], "pretrained": "none", "lr": (0.01, 0.003, 0.001)[k % 3],
                "batch_size": 32, "seed": k} for k in range(n_configs)]
    out = []
    for d in datasets:
        ident = {"dataset_name": d.name, "dataset_hash": content_hash(open_dataset(d)), "group": d.name,
                 "budget_kind": "epochs", "base": {"input_size": 24, "head_width": 32}, "time_budget": 1200.0,
                 "t0": 60.0, "source": "matrix"}
        out += [CellTask(config=c, budget=epochs, dataset=str(d), kwargs=ident) for c in configs]
    return out


def cells_per_hour(workers: int, tasks: list[CellTask], store: Path) -> float:
    """A Ray of ``workers`` CPUs, warmed up; the cells' wall time -> cells per hour."""
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        def warm() -> int:
            import offline_search.objective  # noqa: F401

            time.sleep(1.0)
            return os.getpid()

        ray.get([ray.remote(num_cpus=1)(warm).remote() for _ in range(workers)])
        start = time.perf_counter()
        added = run_cells(tasks, ObservationStore(store), n_workers=workers)
        seconds = time.perf_counter() - start
    finally:
        ray.shutdown()
    if added != len(tasks):
        raise RuntimeError(f"only {added} of {len(tasks)} cells reached the store")
    return len(tasks) / seconds * 3600


def main() -> None:
    """Alternate the 1- and 2-worker arms for ``rounds`` rounds; print cells per hour and the ratios."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny run: 2 configs x 1 dataset, 1 epoch, 1 round")
    ap.add_argument("--configs", type=int, default=8)
    ap.add_argument("--datasets", type=int, default=2)
    ap.add_argument("--per-class", type=int, default=150)
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if a.quick:
        a.configs, a.datasets, a.per_class, a.epochs, a.rounds = 2, 1, 20, 1, 1
    rates: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["METAREC_CACHE_DIR"] = str(Path(tmp) / "cache")
        datasets = [make_dataset(Path(tmp) / f"ds{k}", a.per_class, k) for k in range(a.datasets)]
        tasks = cells(datasets, a.configs, a.epochs)
        for r in range(a.rounds):
            for workers in (1, 2) if r % 2 == 0 else (2, 1):
                rates[workers].append(cells_per_hour(workers, tasks, Path(tmp) / f"store-{r}-{workers}.sqlite"))
    print(f"matrix cells on a local Ray: {len(tasks)} cells ({a.configs} configs x {a.datasets} datasets of "
          f"{3 * a.per_class} images, {a.epochs:g} epochs each), {a.rounds} interleaved round(s), 1 torch thread/cell")
    print(f"{'round':>5} {'1 worker cells/h':>17} {'2 workers cells/h':>18} {'ratio':>6}")
    for r in range(a.rounds):
        print(f"{r:>5} {rates[1][r]:>17.0f} {rates[2][r]:>18.0f} {rates[2][r] / rates[1][r]:>6.2f}")
    ratios = [two / one for one, two in zip(rates[1], rates[2], strict=True)]
    print(f"median ratio 2 vs 1 workers: {statistics.median(ratios):.2f} (goal >= 1.7)")
    print(f"full run: .venv/bin/python bench/bench_ray_cells.py {FULL}")


if __name__ == "__main__":
    main()
