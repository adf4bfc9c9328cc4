"""Exploration (issue 12 §6): the evaluation on each seed's matrix and on their mean, from the observation store.

The shipped portfolio's matrix is the mean of two seeds per cell. This rebuilds the matrix from the store
three ways (seed 0 only, seed 1 only, the mean of both; `portfolio.performance.mean_curve`) with the
portfolio's candidates and datasets, and runs the harness's meta-feature evaluation (no matcher refit,
seconds) on each, leave-one-group-out and leave-one-dataset-out at three budgets. It answers whether a
policy's win on one seed's matrix survives another seed.

Then a noise ceiling: pick on one seed's matrix, score on the other's. "own best" knows the held-out
dataset's own seed-a results perfectly (no policy can know more about it); "single best" is the best mean
over the known columns of seed a. If even the own best is not far below the single best on the other seed,
the matrix's per-dataset differences are mostly seed noise, and no policy can show a large win on it.

    .venv/bin/python bench/explore_seed_matrices.py            # portfolios/demo and its store
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from portfolio.artifact import LoadedPortfolio, load_portfolio  # noqa: E402
from portfolio.evaluation import Problem, evaluate_recommender  # noqa: E402
from portfolio.performance import CellCurve, PerformanceData, matrix_from_curves, mean_curve  # noqa: E402
from portfolio.store import ObservationStore, config_id  # noqa: E402

METHODS = ("single_best", "neighbors/metafeatures", "reduced/metafeatures", "metafeatures_knn")


def seed_matrix(loaded: LoadedPortfolio, store: ObservationStore, seeds: set[int]) -> PerformanceData:
    """The portfolio's candidates × datasets from the store's completed runs of ``seeds`` (their mean curve)."""
    scenario = loaded.portfolio.provenance["scenario"]
    hashes = {e.summary["content_hash"]: e.dataset for e in loaded.portfolio.entries}
    ids = {config_id(c.configuration): c.id for c in loaded.candidates}
    runs: dict[tuple[str, str], list[list[tuple[float, float]]]] = {}
    for o in store.observations(dataset_hashes=list(hashes)):
        if o.ok and o.seed in seeds and o.config_id in ids and o.budget == float(scenario["max_budget"]) \
                and o.budget_kind == scenario["budget_kind"]:
            runs.setdefault((ids[o.config_id], hashes[o.dataset_hash]), []).append([(t, n) for t, n, _ in o.curve])
    curves = {}
    for key, found in runs.items():
        points = mean_curve(found)
        curves[key] = CellCurve(tuple(t for t, _ in points), tuple(n for _, n in points),
                                float(scenario["max_budget"]))
    return matrix_from_curves([c.id for c in loaded.candidates], sorted(hashes.values()), curves)


def noise_ceiling(loaded: LoadedPortfolio, matrices: dict[int, PerformanceData], groups: dict[str, str],
                  budget: float, grouped: bool) -> tuple[float, float]:
    """Mean normalised regret on seed b of (the held-out dataset's own best on seed a, the single best of seed
    a's known columns), averaged over (a, b) = (0, 1) and (1, 0)."""
    own, single = [], []
    for a, b in ((0, 1), (1, 0)):
        pa = Problem.build(matrices[a], loaded.candidates, (), groups, budget)
        pb = Problem.build(matrices[b], loaded.candidates, (), groups, budget)
        for t in range(len(pa.datasets)):
            hidden = pa.hidden(t, grouped)
            rows, cols = pa.rows(hidden), pa.columns(hidden)
            best_own = rows[int(np.argmax(pa.scores[rows, t]))]
            best_mean = rows[int(np.argmax(pa.scores[np.ix_(rows, cols)].mean(axis=1)))]
            own.append(pb.regret(float(pb.scores[best_own, t]), t, rows))
            single.append(pb.regret(float(pb.scores[best_mean, t]), t, rows))
    return float(np.mean(own)), float(np.mean(single))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portfolio", type=Path, default=ROOT / "portfolios" / "demo")
    parser.add_argument("--store", type=Path, default=None, help="default: the portfolio's own store beside it")
    parser.add_argument("--budgets", default="1200,60,10")
    args = parser.parse_args()
    loaded = load_portfolio(args.portfolio)
    store = ObservationStore(args.store or args.portfolio.parent / loaded.portfolio.provenance["observation_store"])
    summaries = {e.dataset: e.summary for e in loaded.portfolio.entries}
    groups = {e.dataset: str(e.summary.get("group") or e.dataset) for e in loaded.portfolio.entries}
    print(f"portfolio {loaded.version}: mean normalised regret (× single best) per seed set")
    print(f"{'matrix':8} {'held out':8} {'T':>6}  " + "  ".join(f"{m:>24}" for m in METHODS))
    for label, seeds in (("seed 0", {0}), ("seed 1", {1}), ("mean", {0, 1})):
        data = seed_matrix(loaded, store, seeds)
        for grouped in (True, False):
            for budget in (float(b) for b in args.budgets.split(",")):
                res = evaluate_recommender(data, summaries, matchers=(), candidates=loaded.candidates,
                                           reduced=loaded.portfolio.reduced_portfolio, groups=groups,
                                           grouped=grouped, time_budget=budget)
                sb = res.methods["single_best"].mean_regret
                cells = [f"{res.methods[m].mean_regret:.3f} ({res.methods[m].mean_regret / sb:.2f}×)" for m in METHODS]
                print(f"{label:8} {'group' if grouped else 'dataset':8} {budget:6g}  "
                      + "  ".join(f"{c:>24}" for c in cells))
    matrices = {s: seed_matrix(loaded, store, {s}) for s in (0, 1)}
    print("\nnoise ceiling: picked on one seed's matrix, normalised regret on the other seed's")
    print(f"{'held out':8} {'T':>6}  {'own best':>9} {'single best':>12} {'ratio':>6}")
    for grouped in (True, False):
        for budget in (float(b) for b in args.budgets.split(",")):
            own, single = noise_ceiling(loaded, matrices, groups, budget, grouped)
            print(f"{'group' if grouped else 'dataset':8} {budget:6g}  {own:9.3f} {single:12.3f} {own / single:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
