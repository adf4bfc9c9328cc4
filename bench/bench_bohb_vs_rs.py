"""BOHB against hpbandster's RandomSearch on the rebuild's search space: best score vs budget spent.

Goal (issue 12 §5): BOHB reaches RandomSearch's final best score with <= 1/3 of RandomSearch's budget.
Space: the offline search's own (``finetune.space.build_search_space`` with every default backbone, ImageNet
offered only where its weights are installed, as the rebuild searches). Datasets: variants derived
(``metafeatures.derive``) from offline demo sources (digits, textures, ...), built in a scratch folder.
Objective: the real fine-tune objective, score final NAUC, budgets in epochs (1/3/9 with eta 3): with
wall-clock budgets the same configuration would score differently under the machine's varying load, and
both optimisers must buy the same work for a budget. Both optimisers run the same number of iterations
with the same seeds and workers; per (dataset, seed) the order of the two arms alternates. Budget spent =
epochs of finished evaluations in finishing order; "best" counts only evaluations at the full budget.

    .venv/bin/python bench/bench_bohb_vs_rs.py --quick    # tiny run, proves the script works
    .venv/bin/python bench/bench_bohb_vs_rs.py            # full (see FULL below)
    .venv/bin/python bench/bench_bohb_vs_rs.py --report   # the table of what is stored so far, nothing run

Resumable: each finished (dataset, seed) pair is written to ``--out`` (one JSON file with both arms' curves)
and skipped when the script is run again with the same settings, so the ~3 h full run can be spread over
several sessions; the table covers every stored pair of the requested sources and seeds.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py
os.environ["OMP_NUM_THREADS"] = "1"  # one thread per worker process

import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.space import DEFAULT_BACKBONES, DEFAULT_PRETRAINED, build_search_space  # noqa: E402
from offline_search.hpb import Trial, run_bohb  # noqa: E402

FULL = "--sources digits,textures,shapes --iterations 4 --seeds 3 --max-images 300 --workers 2"
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "bohb_vs_rs"
FORMAT = 1


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


def derived_datasets(root: Path, sources: list[str], max_images: int) -> list[Path]:
    """One derived variant (class subset, image count, resolution, ...) of each demo source."""
    from metafeatures.demo import generate_demo_collection
    from metafeatures.derive import derive_dataset

    generate_demo_collection(root / "demo", progress=False, only=sources)
    demo = {p.name.removesuffix(".npz"): p for p in (root / "demo").iterdir()}  # a folder or an .npz file
    return [derive_dataset(demo[s], root / "derived", 1, seed=0, max_images=max_images, group=s)[0]
            for s in sources]


def pair_path(out: Path, source: str, seed: int) -> Path:
    return out / f"{source}-seed{seed}.json"


def load_pair(out: Path, source: str, seed: int, settings: dict) -> dict | None:
    """A stored (dataset, seed) result with the same settings, else None (other settings: refused, not mixed)."""
    path = pair_path(out, source, seed)
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    if stored.get("settings") != settings:
        raise SystemExit(f"{path} was measured with other settings ({stored.get('settings')}); "
                         f"use another --out or the same settings ({settings})")
    return stored


def save_pair(out: Path, source: str, seed: int, settings: dict, dataset: str, curves: dict) -> None:
    """Write one finished pair (atomically: a killed run leaves no half file)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = pair_path(out, source, seed).with_suffix(".tmp")
    tmp.write_text(json.dumps({"settings": settings, "dataset": dataset, "source": source, "seed": seed,
                               "curves": curves}, indent=1))
    tmp.replace(pair_path(out, source, seed))


def row(dataset: str, seed: int, curves: dict, max_budget: float) -> tuple:
    """(dataset, seed, RS best, RS budget, BOHB best, BOHB budget, BOHB budget to reach RS's best)."""
    rs_total, rs_best = curves["random"][-1]
    reach = budget_to_reach([tuple(p) for p in curves["bohb"]], rs_best)
    return (dataset, seed, rs_best, rs_total, curves["bohb"][-1][1], curves["bohb"][-1][0], reach)


def main() -> None:
    """Run both optimisers per dataset and seed, arms alternating; print the table and the summary."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny run: 1 source, 40 images, budgets 1/3, 1 iteration")
    ap.add_argument("--sources", default="digits,textures,shapes", help="demo sources to derive datasets from")
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max-images", type=int, default=300)
    ap.add_argument("--min-budget", type=float, default=1)
    ap.add_argument("--max-budget", type=float, default=9)
    ap.add_argument("--input-size", type=int, default=64, help="fixed input resolution (keeps CPU cost bounded)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--report", action="store_true", help="print the table of the stored pairs only; run nothing")
    ap.add_argument("--out", type=Path, default=RESULTS,
                    help="folder of finished (dataset, seed) pairs: stored pairs are not rerun (--quick: none)")
    a = ap.parse_args()
    if a.quick:
        a.sources, a.iterations, a.seeds, a.max_images, a.max_budget, a.input_size, a.workers = \
            "digits", 1, 1, 40, 3, 32, 1
    settings = {"format": FORMAT, "iterations": a.iterations, "max_images": a.max_images, "min_budget": a.min_budget,
                "max_budget": a.max_budget, "input_size": a.input_size, "workers": a.workers}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["METAREC_CACHE_DIR"] = str(Path(tmp) / "cache")
        sources = a.sources.split(",")
        for source in sources:
            for seed in range(a.seeds):
                stored = None if a.quick else load_pair(a.out, source, seed, settings)
                if stored is not None:
                    curves = stored["curves"]
                    print(f"{stored['dataset']} seed {seed}: stored in {a.out}", flush=True)
                    rows.append(row(stored["dataset"], seed, curves, a.max_budget))
                    continue
                if a.report:
                    continue
                d = derived_datasets(Path(tmp) / f"{source}-{seed}", [source], a.max_images)[0]
                kwargs = {"dataset": str(d), "budget_kind": "epochs", "score": "final_nauc",
                          "base": {"input_size": a.input_size}}
                curves = {}
                for opt in ("random", "bohb") if seed % 2 == 0 else ("bohb", "random"):
                    space = build_search_space(DEFAULT_BACKBONES, DEFAULT_PRETRAINED, seed=seed, gate_imagenet=True)
                    trials = run_bohb(space, "offline_search.objective:finetune_objective",
                                      Path(tmp) / f"{d.name}-{opt}-{seed}", f"{d.name}-{opt}-{seed}",
                                      min_budget=a.min_budget, max_budget=a.max_budget, n_iterations=a.iterations,
                                      eta=3, n_workers=a.workers, seed=seed, objective_kwargs=kwargs, optimizer=opt)
                    curves[opt] = curve(trials, a.max_budget)
                if not a.quick:
                    save_pair(a.out, source, seed, settings, d.name, curves)
                rows.append(row(d.name, seed, curves, a.max_budget))
    print(f"search space: {', '.join(DEFAULT_BACKBONES)} x {'/'.join(DEFAULT_PRETRAINED)} (ImageNet where installed); "
          f"final NAUC; budgets {a.min_budget:g}-{a.max_budget:g} epochs, eta 3, {a.iterations} iteration(s), "
          f"{a.workers} worker(s), input {a.input_size} px")
    print(f"{'dataset':>22} {'seed':>4} {'RS best':>8} {'RS budget':>10} {'BOHB best':>10} {'BOHB budget':>12} "
          f"{'BOHB budget to RS best':>23} {'share':>6}")
    shares = []
    for name, seed, rs_best, rs_total, b_best, b_total, reach in rows:
        share = reach / rs_total if reach is not None else None
        shares.append(share if share is not None else float("inf"))
        print(f"{name:>22} {seed:>4} {rs_best:>8.4f} {rs_total:>10.0f} {b_best:>10.4f} {b_total:>12.0f} "
              f"{(f'{reach:.0f}' if reach is not None else '-'):>23} "
              f"{(f'{share:.2f}' if share is not None else 'never'):>6}")
    met = sum(s <= 1 / 3 + 1e-9 for s in shares)
    median = statistics.median(shares)
    median_text = f"{median:.2f}" if median != float("inf") else "never reached"
    print(f"median share {median_text}; goal (<= 1/3) met on {met} of {len(shares)} (dataset, seed) pairs")
    print(f"full run: .venv/bin/python bench/bench_bohb_vs_rs.py {FULL}")


if __name__ == "__main__":
    main()
