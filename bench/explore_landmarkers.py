"""Exploration (issue 12 §6): do transferability landmarkers make better meta-feature neighbours?

The four meta-features (classes, images, resolution, colour) cannot tell a dataset where ImageNet features
help from one where a small network from scratch wins, and on the shipped portfolio that is most of the
single best's regret (the pretrained MobileNetV2 wins the shapes/textures groups, a from-scratch LeNet most
others). Landmarking (auto-sklearn 1) and transferability estimation (LogME, NCE) answer it with a cheap
probe of the labelled data. Two probes here, on the same seeded sample the fingerprints use (512 images or
clips; labels are known, as for any dataset metarec fine-tunes):

- ``probe_pretrained``: 5-fold nearest-centroid accuracy on the portfolio's frozen fingerprint features;
- ``probe_pixels``: the same on 16 × 16 mean-pooled raw pixels (centred, unit length);

both chance-corrected ((acc − 1/C) / (1 − 1/C)). It prints their correlation with the pretrained-minus-scratch
advantage (best pretrained candidate's ALC − best from-scratch candidate's, per dataset) and runs the
harness's meta-feature neighbours (nested k and weighting) with the probes added, leave-one-group-out and
leave-one-dataset-out at three budgets. Not part of the recommender: it answers whether the probes are worth
adding. The variants were chosen after looking at the per-group table, so a win here would still need
confirming on datasets that did not suggest it.

    .venv/bin/python bench/explore_landmarkers.py --collection data/meta      # ~2 min with cached fingerprints
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from portfolio.artifact import load_portfolio  # noqa: E402
from portfolio.eval_data import known_datasets  # noqa: E402
from portfolio.evaluation import evaluate_recommender, meta_features  # noqa: E402
from portfolio.fingerprinting import fingerprinter_for  # noqa: E402

POOL = 4  # 64 px fingerprint resolution / 4 = 16 × 16 pixels for the raw probe


def centroid_probe(x: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Chance-corrected ``folds``-fold nearest-centroid accuracy of unit-length rows ``x`` under ``labels``."""
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)
    classes = np.unique(labels)
    order = np.random.default_rng(seed).permutation(len(labels))
    correct = 0
    for test in np.array_split(order, folds):
        train = np.setdiff1d(order, test)
        present = [c for c in classes if (labels[train] == c).any()]
        centroids = np.stack([x[train][labels[train] == c].mean(axis=0) for c in present])
        nearest = ((x[test][:, None, :] - centroids[None]) ** 2).sum(axis=-1).argmin(axis=1)
        correct += int((np.asarray(present)[nearest] == labels[test]).sum())
    chance = 1.0 / len(classes)
    return (correct / len(labels) - chance) / (1.0 - chance)


def pooled_pixels(pixels: np.ndarray) -> np.ndarray:
    """(N, R, R, 3) uint8 → (N, (R/POOL)² · 3) mean-pooled, centred per image: the raw-pixel probe's input."""
    n, r = pixels.shape[0], pixels.shape[1] // POOL
    x = pixels[:, : r * POOL, : r * POOL].astype(np.float32).reshape(n, r, POOL, r, POOL, 3).mean(axis=(2, 4))
    x = x.reshape(n, -1)
    return x - x.mean(axis=1, keepdims=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portfolio", type=Path, default=ROOT / "portfolios" / "demo")
    parser.add_argument("--collection", type=Path, default=None,
                        help="the meta-collection folder (default: regenerate it into the cache)")
    parser.add_argument("--budgets", default="1200,60,10")
    args = parser.parse_args()
    loaded = load_portfolio(args.portfolio)
    hashes: dict[str, str] = loaded.portfolio.provenance["dataset_hashes"]
    names = list(loaded.portfolio.datasets)
    n = int(loaded.portfolio.provenance.get("fingerprint_sampling", {}).get("n_samples", 512))
    datasets = known_datasets(names, hashes, args.collection, say=print)
    fingerprinter = fingerprinter_for(loaded, device="cpu")
    probes: dict[str, tuple[float, float]] = {}
    for name in names:
        fp = fingerprinter.fingerprint(datasets[name], hashes[name], n_samples=n, seed=0)
        raw = fingerprinter.fingerprint(datasets[name], hashes[name], n_samples=n, seed=0, use_cache=False,
                                        embed=pooled_pixels)
        assert (raw.indices == fp.indices).all(), name
        probes[name] = (centroid_probe(fp.features, fp.labels), centroid_probe(raw.features, raw.labels))

    scores, _ = loaded.performance.scores_at(None)
    matrix = loaded.performance.matrix
    by_id = {c.id: c for c in loaded.candidates}
    pretrained = np.array([by_id[c].configuration.get("pretrained") not in (None, "none") for c in matrix.configs])
    advantage = np.array([scores[pretrained, j].max() - scores[~pretrained, j].max()
                          for j in range(len(matrix.datasets))])
    p_pre = np.array([probes[d][0] for d in matrix.datasets])
    p_pix = np.array([probes[d][1] for d in matrix.datasets])
    print(f"{'dataset':26} {'pretrained':>10} {'pixels':>7} {'diff':>6} {'advantage':>9}")
    for j, d in enumerate(matrix.datasets):
        print(f"{d:26} {p_pre[j]:10.2f} {p_pix[j]:7.2f} {p_pre[j] - p_pix[j]:+6.2f} {advantage[j]:+9.2f}")
    for label, x in (("probe_pretrained", p_pre), ("probe_pixels", p_pix), ("difference", p_pre - p_pix)):
        print(f"correlation of {label} with the pretrained-minus-scratch advantage: "
              f"{np.corrcoef(x, advantage)[0, 1]:+.2f}")

    summaries = {e.dataset: e.summary for e in loaded.portfolio.entries}
    groups = {e.dataset: str(e.summary.get("group") or e.dataset) for e in loaded.portfolio.entries}
    variants: dict[str, Callable[[str], np.ndarray]] = {
        "4 meta-features": lambda d: meta_features(summaries[d]),
        "+ difference": lambda d: np.r_[meta_features(summaries[d]), probes[d][0] - probes[d][1]],
        "+ both probes": lambda d: np.r_[meta_features(summaries[d]), probes[d]],
        "both probes only": lambda d: np.asarray(probes[d]),
    }
    budgets = [float(b) for b in args.budgets.split(",")]
    print("\nneighbors/metafeatures mean normalised regret (× single best), k and weighting chosen nested")
    print(f"{'features':18} {'held out':8}  " + "  ".join(f"{f'T = {b:g} s':>20}" for b in budgets))
    for label, make in variants.items():
        vectors = {d: make(d) for d in names}
        for grouped in (True, False):
            cells = []
            for budget in budgets:
                res = evaluate_recommender(loaded.performance, summaries, matchers=(), candidates=loaded.candidates,
                                           reduced=loaded.portfolio.reduced_portfolio, groups=groups,
                                           grouped=grouped, time_budget=budget, features=vectors)
                sb, nb = res.methods["single_best"].mean_regret, res.methods["neighbors/metafeatures"].mean_regret
                cells.append(f"{nb:.3f} ({nb / sb:.2f}×)")
            print(f"{label:18} {'group' if grouped else 'dataset':8}  " + "  ".join(f"{c:>20}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
