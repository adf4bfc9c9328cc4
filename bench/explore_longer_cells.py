"""Exploration (issue 12 §6): do longer cells give the matrix more room than seed noise?

The shipped portfolio's cells are 10-s fine-tunes on one CPU thread; two seeds of a cell differ by 0.12 ALC
on average, about the size of the gap between the oracle and the single best, and picked on one seed and
scored on the other even a dataset's own best candidate reaches only 0.31–0.52 × the single best's regret
(`bench/explore_seed_matrices.py`). This runs a submatrix again with longer cells (default 30 s: the first
variant of each group × the candidates that learn anywhere, two seeds) through the rebuild's own Ray path
(:func:`offline_search.ray_cells.run_cells`) into its own observation store, resuming from what that store
holds, and compares it with the same cells at 10 s from the portfolio's store: seed noise, room (oracle −
single best, the single best's normalised regret) and the noise ceiling (own best of one seed, scored on the
other), all at T = 1200 s, leave-one-dataset-out within the submatrix.

    OMP_NUM_THREADS=1 .venv/bin/python bench/explore_longer_cells.py --collection data/meta    # ~55 min
    .venv/bin/python bench/explore_longer_cells.py --collection data/meta --analyse-only        # seconds

Wall-clock budgets: run it on an otherwise quiet machine (two workers, one thread each, as the build ran).
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

from finetune.metrics import alc  # noqa: E402
from offline_search.ray_cells import CellTask, run_cells  # noqa: E402
from portfolio.artifact import LoadedPortfolio, load_portfolio  # noqa: E402
from portfolio.selection import FAILED_SCORE  # noqa: E402
from portfolio.store import ObservationStore, config_id  # noqa: E402

#: candidates with a mean ALC above 0.25 on the shipped two-seed matrix (the others learn almost nowhere)
LEARNERS = ("animal_silhouettes__v00", "photo_patches__v00", "shapes__v00", "surface_defects__v00",
            "video_shapes__v00", "seed000_default", "sobol_000")
SEEDS = (0, 1)
T, T0 = 1200.0, 60.0

Cells = dict[tuple[str, str], dict[int, float]]  # (candidate, dataset) -> seed -> ALC at T


def first_variants(loaded: LoadedPortfolio) -> list[str]:
    """The first dataset (by name) of each group."""
    firsts: dict[str, str] = {}
    for e in sorted(loaded.portfolio.entries, key=lambda e: e.dataset):
        firsts.setdefault(str(e.summary.get("group") or e.dataset), e.dataset)
    return sorted(firsts.values())


def read_cells(store: ObservationStore, loaded: LoadedPortfolio, candidates: list[str], datasets: list[str],
               budget: float) -> Cells:
    """ALC at T of every stored (candidate, dataset, seed) at ``budget`` seconds; a failed run is FAILED_SCORE."""
    hashes = loaded.portfolio.provenance["dataset_hashes"]
    by_hash = {hashes[d]: d for d in datasets}
    ids = {config_id(c.configuration): c.id for c in loaded.candidates if c.id in candidates}
    out: Cells = {}
    for o in store.observations(dataset_hashes=list(by_hash)):
        if o.config_id in ids and o.seed in SEEDS and o.budget_kind == "seconds" and abs(o.budget - budget) < 1e-6:
            score = alc([t for t, _, _ in o.curve], [n for _, n, _ in o.curve], T, T0) if o.ok else FAILED_SCORE
            out.setdefault((ids[o.config_id], by_hash[o.dataset_hash]), {})[o.seed] = score
    return out


def tasks_to_run(store: ObservationStore, loaded: LoadedPortfolio, candidates: list[str], datasets: list[str],
                 collection: Path, budget: float) -> list[CellTask]:
    """The cells of ``candidates`` × ``datasets`` × SEEDS at ``budget`` s that ``store`` does not hold yet."""
    done = read_cells(store, loaded, candidates, datasets, budget)
    hashes = loaded.portfolio.provenance["dataset_hashes"]
    groups = {e.dataset: str(e.summary.get("group") or e.dataset) for e in loaded.portfolio.entries}
    by_id = {c.id: c for c in loaded.candidates}
    scenario = loaded.portfolio.provenance["scenario"]
    tasks = []
    for seed in SEEDS:  # seed 0 of every cell first: an interrupted run still has one complete matrix
        for d in datasets:
            for c in candidates:
                if seed in done.get((c, d), {}):
                    continue
                config = {**by_id[c].configuration, "seed": int(scenario["seed"]) + seed}
                kwargs = {"budget_kind": "seconds", "base": {"seed": int(scenario["seed"])}, "time_budget": T,
                          "t0": T0, "dataset_name": d, "dataset_hash": hashes[d], "group": groups[d],
                          "source": "matrix"}
                tasks.append(CellTask(config=config, budget=budget, dataset=str(collection / d), kwargs=kwargs))
    return tasks


def analyse(cells: Cells, candidates: list[str], datasets: list[str]) -> dict[str, float]:
    """Seed noise, room and the noise ceiling of one submatrix (cells with both seeds only)."""
    both = [v for v in cells.values() if all(s in v for s in SEEDS)]
    noise = float(np.mean([abs(v[1] - v[0]) for v in both]))
    per_seed = {s: np.array([[cells.get((c, d), {}).get(s, np.nan) for d in datasets] for c in candidates])
                for s in SEEDS}
    mean = np.nanmean(np.stack([per_seed[s] for s in SEEDS]), axis=0)

    def regret(m: np.ndarray, row: int, j: int) -> float:
        col = m[:, j]
        span = np.nanmax(col) - np.nanmin(col)
        return 0.0 if span < 1e-12 else float((np.nanmax(col) - col[row]) / span)

    def single_best(m: np.ndarray, j: int) -> int:
        others = [k for k in range(m.shape[1]) if k != j]
        return int(np.nanargmax(np.nanmean(m[:, others], axis=1)))

    n = len(datasets)
    gap = float(np.mean([np.nanmax(mean[:, j]) - mean[single_best(mean, j), j] for j in range(n)]))
    sb_regret = float(np.mean([regret(mean, single_best(mean, j), j) for j in range(n)]))
    own, single = [], []
    for a, b in ((0, 1), (1, 0)):
        ma, mb = per_seed[a], per_seed[b]
        for j in range(n):
            own.append(regret(mb, int(np.nanargmax(ma[:, j])), j))
            single.append(regret(mb, single_best(ma, j), j))
    return {"cells with two seeds": len(both), "seed noise (mean |ΔALC|)": noise, "oracle − single best (ALC)": gap,
            "single best normalised regret": sb_regret, "ceiling: own best": float(np.mean(own)),
            "ceiling: single best": float(np.mean(single)),
            "ceiling ratio": float(np.mean(own)) / max(float(np.mean(single)), 1e-12), "gap / noise": gap / noise}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portfolio", type=Path, default=ROOT / "portfolios" / "demo")
    parser.add_argument("--collection", type=Path, required=True, help="the meta-collection (metarec datasets "
                                                                        "meta-collection --out DIR)")
    parser.add_argument("--store", type=Path, default=ROOT / "docs" / "results" / "longer_cells.observations.sqlite")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per cell (the portfolio's: 10)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--analyse-only", action="store_true", help="no new cells: compare what is stored")
    args = parser.parse_args()
    loaded = load_portfolio(args.portfolio)
    shipped = ObservationStore(args.portfolio.parent / loaded.portfolio.provenance["observation_store"])
    store = ObservationStore(args.store)
    candidates, datasets = list(LEARNERS), first_variants(loaded)
    if not args.analyse_only:
        todo = tasks_to_run(store, loaded, candidates, datasets, args.collection, args.budget)
        print(f"{len(todo)} cells to run ({len(candidates)} candidates × {len(datasets)} datasets × {len(SEEDS)} "
              f"seeds at {args.budget:g} s, minus what {args.store.name} holds)")
        if todo:
            run_cells(todo, store, n_workers=args.workers, progress=True)
    short = analyse(read_cells(shipped, loaded, candidates, datasets, 10.0), candidates, datasets)
    long = analyse(read_cells(store, loaded, candidates, datasets, args.budget), candidates, datasets)
    print(f"\n{len(candidates)} candidates × {len(datasets)} datasets, ALC at T = {T:g} s, leave-one-dataset-out")
    print(f"{'':32} {'10 s cells':>12} {f'{args.budget:g} s cells':>12}")
    for key in short:
        print(f"{key:32} {short[key]:12.3f} {long[key]:12.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
