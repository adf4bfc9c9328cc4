"""BOHB against hpbandster's RandomSearch on the same dataset and objective: best score vs budget spent.

Target (search issue): BOHB reaches RandomSearch's final best score with <= 1/3 of RandomSearch's budget.
Objective: the real fine-tune objective (lenet on a generated image dataset, final NAUC, budgets in
epochs 1/3/9 with eta 3); both optimizers run the same number of iterations with 2 workers; budget spent
is the sum of the epochs of finished evaluations, in finishing order; "best" counts only evaluations at
the full budget (what an incumbent is).

    .venv/bin/python bench/bench_bohb_vs_rs.py [--iterations 4] [--seeds 2]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py
os.environ["OMP_NUM_THREADS"] = "1"  # one thread per worker process

import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_bohb_workers import make_dataset  # noqa: E402

from finetune.space import build_search_space  # noqa: E402
from offline_search.hpb import Trial, run_bohb  # noqa: E402


def curve(trials: list[Trial], max_budget: float) -> list[tuple[float, float]]:
    """(cumulative budget, best full-budget score so far) after each finished evaluation."""
    spent, best, points = 0.0, float("-inf"), []
    for t in sorted(trials, key=lambda t: t.finished or 0.0):
        spent += t.budget
        if t.budget >= max_budget and t.loss is not None and "error" not in t.info:
            best = max(best, -t.loss)
        points.append((spent, best))
    return points


def budget_to_reach(points: list[tuple[float, float]], target: float) -> float | None:
    """Budget spent when the best score first reaches ``target`` (None if never)."""
    return next((spent for spent, best in points if best >= target - 1e-12), None)


def main() -> None:
    """Run both optimizers per seed and print the comparison."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=2)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["METAREC_CACHE_DIR"] = str(Path(tmp) / "cache")
        data = make_dataset(Path(tmp) / "ds")
        kwargs = {"dataset": str(data), "budget_kind": "epochs", "score": "final_nauc",
                  "base": {"input_size": 24, "head_width": 64}}
        for seed in range(a.seeds):
            curves = {}
            for opt in ("random", "bohb"):
                space = build_search_space(backbones=("lenet",), pretrained=("none",), seed=seed)
                trials = run_bohb(space, "offline_search.objective:finetune_objective", Path(tmp) / f"{opt}-{seed}",
                                  f"{opt}-{seed}", min_budget=1, max_budget=9, n_iterations=a.iterations, eta=3,
                                  n_workers=2, seed=seed, objective_kwargs=kwargs, optimizer=opt)
                curves[opt] = curve(trials, 9)
            rs_total, rs_best = curves["random"][-1]
            reach = budget_to_reach(curves["bohb"], rs_best)
            rows.append((seed, rs_best, rs_total, curves["bohb"][-1][1], curves["bohb"][-1][0], reach))
    print(f"lenet fine-tunes, final NAUC, budgets 1/3/9 epochs, {a.iterations} iterations each, 2 workers")
    print(f"{'seed':>4} {'RS best':>8} {'RS budget':>10} {'BOHB best':>10} {'BOHB budget':>12} "
          f"{'BOHB budget to RS best':>23} {'share':>6}")
    for seed, rs_best, rs_total, b_best, b_total, reach in rows:
        share = f"{reach / rs_total:.2f}" if reach is not None else "never"
        reach_text = f"{reach:.0f}" if reach is not None else "-"
        print(f"{seed:>4} {rs_best:>8.4f} {rs_total:>10.0f} {b_best:>10.4f} {b_total:>12.0f} {reach_text:>23} "
              f"{share:>6}")


if __name__ == "__main__":
    main()
