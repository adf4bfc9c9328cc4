"""Which way BOHB goes on Ray: each search as one Ray task (hpbandster's master and a worker thread inside it,
searches of different datasets side by side: what ``offline_search/ray_search.py`` does) against hpbandster
workers as Ray tasks joining one master on the driver (searches one after the other, every worker on it).

Same datasets, space, budgets, seeds and Ray (``--workers`` CPUs) for both arms; arms alternate within each
round (the machine's speed drifts). Reported: wall seconds for all the searches, worker busy share (time in
evaluations / (workers × wall)), and the ratio. The BOHB budgets are epochs, so both arms do the same work.

    .venv/bin/python bench/bench_ray_search.py --quick      # tiny run, proves the script works
    .venv/bin/python bench/bench_ray_search.py              # full: 2 datasets, 2 iterations, 3 rounds
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py
os.environ["OMP_NUM_THREADS"] = "1"  # one torch thread per worker

import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.space import build_search_space  # noqa: E402
from offline_search.hpb import TASK_NAME, run_bohb, run_worker_from_task  # noqa: E402
from offline_search.ray_search import SearchTask, run_searches  # noqa: E402
from portfolio.store import ObservationStore  # noqa: E402

OBJECTIVE = "offline_search.objective:finetune_objective"


def make_dataset(root: Path, per_class: int, seed: int) -> Path:
    """Three tinted classes of noisy 24x24 colour images."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(("r", "g", "b")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 160, (24, 24, 3))
            img[..., k] += 60
            Image.fromarray(img.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def _kwargs(data: Path) -> dict:
    return {"dataset": str(data), "budget_kind": "epochs", "score": "final_nauc",
            "base": {"input_size": 24, "head_width": 32}}


def _busy(run_dirs: list[Path]) -> float:
    """Seconds spent inside evaluations (hpbandster's started/finished stamps) over the runs."""
    total = 0.0
    for run in run_dirs:
        for part in run.glob("part-*"):
            for line in (part / "results.json").read_text().splitlines():
                stamps = json.loads(line)[2]
                total += stamps["finished"] - stamps["started"]
    return total


def search_tasks(datasets: list[Path], out: Path, a: argparse.Namespace, seed: int) -> tuple[float, float]:
    """Arm A: one Ray task per dataset's search (a worker thread inside each)."""
    store = ObservationStore(out / "a.sqlite")
    tasks = [SearchTask(name=d.name, run_dir=out / f"a-{d.name}", run_id=f"a-{d.name}-{seed}",
                        space=build_search_space(("lenet",), ("none",), seed=seed), objective=OBJECTIVE,
                        objective_kwargs=_kwargs(d), min_budget=a.min_budget, max_budget=a.max_budget,
                        n_iterations=a.iterations, eta=3, seed=seed + k) for k, d in enumerate(datasets)]
    start = time.perf_counter()
    run_searches(tasks, store, n_workers=a.workers)
    wall = time.perf_counter() - start
    return wall, _busy([t.run_dir for t in tasks]) / (a.workers * wall)


def worker_tasks(datasets: list[Path], out: Path, a: argparse.Namespace, seed: int) -> tuple[float, float]:
    """Arm B: per dataset, the master on the driver and ``workers`` Ray tasks as its hpbandster workers."""
    import ray

    remote = ray.remote(num_cpus=1)(run_worker_from_task)
    start = time.perf_counter()
    runs = []
    for k, d in enumerate(datasets):
        run = out / f"b-{d.name}"
        runs.append(run)
        kwargs = {**_kwargs(d), "store": str(out / "b.sqlite")}
        master = threading.Thread(target=run_bohb, args=(build_search_space(("lenet",), ("none",), seed=seed),
                                                         OBJECTIVE, run, f"b-{d.name}-{seed}"),
                                  kwargs=dict(min_budget=a.min_budget, max_budget=a.max_budget,
                                              n_iterations=a.iterations, eta=3, n_workers=0, seed=seed + k,
                                              objective_kwargs=kwargs))
        master.start()
        while not (run / TASK_NAME).is_file():
            time.sleep(0.1)
        workers = [remote.remote(run / TASK_NAME, None, None, i) for i in range(a.workers)]
        master.join()
        ray.get(workers, timeout=120)
    wall = time.perf_counter() - start
    return wall, _busy(runs) / (a.workers * wall)


def _warm(ray: object, workers: int) -> None:
    """Import torch and the objective in every Ray worker before timing anything."""
    def load() -> int:
        import offline_search.objective  # noqa: F401

        time.sleep(1.0)
        return os.getpid()

    ray.get([ray.remote(num_cpus=1)(load).remote() for _ in range(workers)])  # type: ignore[attr-defined]


def main() -> None:
    """Alternate the two arms for ``rounds`` rounds and print the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny run: 2 small datasets, budgets 1/3 epochs, 1 round")
    ap.add_argument("--datasets", type=int, default=2)
    ap.add_argument("--per-class", type=int, default=120)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--min-budget", type=float, default=1)
    ap.add_argument("--max-budget", type=float, default=9)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if a.quick:
        a.per_class, a.iterations, a.max_budget, a.rounds = 20, 1, 3, 1
    import ray

    ray.init(num_cpus=a.workers, include_dashboard=False, log_to_driver=False)
    walls: dict[str, list[float]] = {"A": [], "B": []}
    busy: dict[str, list[float]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["METAREC_CACHE_DIR"] = str(Path(tmp) / "cache")
        datasets = [make_dataset(Path(tmp) / f"ds{k}", a.per_class, k) for k in range(a.datasets)]
        _warm(ray, a.workers)
        for r in range(a.rounds):
            for arm in ("A", "B") if r % 2 == 0 else ("B", "A"):
                out = Path(tmp) / f"round-{r}"
                out.mkdir(exist_ok=True)
                wall, share = (search_tasks if arm == "A" else worker_tasks)(datasets, out, a, seed=r)
                walls[arm].append(wall)
                busy[arm].append(share)
    ray.shutdown()
    print(f"BOHB on Ray, {a.datasets} datasets x {a.iterations} iteration(s), budgets {a.min_budget:g}-"
          f"{a.max_budget:g} epochs (lenet, {3 * a.per_class} images), {a.workers} Ray CPUs, {a.rounds} round(s)")
    print("A = each search one Ray task (ray_search.py); B = hpbandster workers as Ray tasks, one master at a time")
    print(f"{'round':>5} {'A wall s':>9} {'B wall s':>9} {'A busy':>7} {'B busy':>7} {'B/A wall':>9}")
    for r in range(a.rounds):
        print(f"{r:>5} {walls['A'][r]:>9.1f} {walls['B'][r]:>9.1f} {busy['A'][r]:>7.2f} {busy['B'][r]:>7.2f} "
              f"{walls['B'][r] / walls['A'][r]:>9.2f}")
    ratios = [b / x for x, b in zip(walls["A"], walls["B"], strict=True)]
    print(f"median B/A wall ratio: {statistics.median(ratios):.2f} (> 1: search tasks are faster)")
    print("full run: .venv/bin/python bench/bench_ray_search.py --datasets 2 --per-class 120 --iterations 2 "
          "--min-budget 1 --max-budget 9 --rounds 3 --workers 2")


if __name__ == "__main__":
    main()
