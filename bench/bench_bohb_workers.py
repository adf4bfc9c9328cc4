"""BOHB throughput with 2 worker processes against 1 on loopback: evaluations per hour, same run.

Target (search issue): >= 1.7x. The objective is the real fine-tune objective (lenet on a generated
image dataset, 3–9 epochs); each worker process uses one torch thread (OMP_NUM_THREADS=1, inherited by
the spawned workers) so that the two set-ups use the machine's two cores comparably.

    .venv/bin/python bench/bench_bohb_workers.py [--iterations 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py
os.environ["OMP_NUM_THREADS"] = "1"  # one thread per worker process (inherited by spawned workers)

import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.space import build_search_space  # noqa: E402
from offline_search.hpb import run_bohb  # noqa: E402


def make_dataset(root: Path) -> Path:
    """Three tinted classes of 24x24 colour images, 150 each."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(("r", "g", "b")):
        (root / name).mkdir(parents=True)
        for i in range(150):
            img = rng.integers(0, 128, (24, 24, 3))
            img[..., k] += 100
            Image.fromarray(img.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def evals_per_hour(workers: int, data: Path, run_dir: Path, iterations: int, seed: int) -> tuple[float, int]:
    """Run BOHB with ``workers`` local workers; return evaluations per hour and the number of evaluations."""
    space = build_search_space(backbones=("lenet",), pretrained=("none",), strategies=("full",), seed=seed)
    start = time.perf_counter()
    trials = run_bohb(space, "offline_search.objective:finetune_objective", run_dir, f"bench-{workers}-{seed}",
                      min_budget=3, max_budget=9, n_iterations=iterations, eta=3, n_workers=workers, seed=seed,
                      objective_kwargs={"dataset": str(data), "budget_kind": "epochs", "score": "final_nauc",
                                        "base": {"input_size": 24, "head_width": 64}})
    seconds = time.perf_counter() - start
    return len(trials) / seconds * 3600, len(trials)


def main() -> None:
    """Interleave 1-worker and 2-worker runs; print evaluations per hour and the ratio."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    rates: dict[int, list[float]] = {1: [], 2: []}
    counts: dict[int, list[int]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["METAREC_CACHE_DIR"] = str(Path(tmp) / "cache")
        data = make_dataset(Path(tmp) / "ds")
        for r in range(a.rounds):
            for workers in (1, 2):
                rate, n = evals_per_hour(workers, data, Path(tmp) / f"run-{r}-{workers}", a.iterations, seed=r)
                rates[workers].append(rate)
                counts[workers].append(n)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"BOHB, {a.iterations} iterations (budgets 3/9 epochs, lenet), {a.rounds} interleaved rounds, "
          f"1 torch thread per worker, CPU")
    print(f"{'workers':>8} {'evaluations':>12} {'evals/hour':>11}")
    print(f"{1:>8} {statistics.median(counts[1]):>12.0f} {one:>11.0f}")
    print(f"{2:>8} {statistics.median(counts[2]):>12.0f} {two:>11.0f}")
    print(f"ratio 2 vs 1 workers: {two / one:.2f}")


if __name__ == "__main__":
    main()
