"""Matcher identification accuracy on the demo collection for both fingerprint set-ups, with timings.

Targets (foundation issue): the best matcher >= 0.99 at test batch 64 and >= 0.90 at batch 8; the whole
evaluation of ~10 datasets finishes in minutes on this CPU (decoded images and fingerprints cached).

    .venv/bin/python bench/bench_matchers.py [--collection data/demo] [--n-samples 1024]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metafeatures.datasets import open_collection  # noqa: E402
from metafeatures.demo import generate_demo_collection  # noqa: E402
from metafeatures.evaluation import evaluate_matchers  # noqa: E402
from metafeatures.fingerprint import Fingerprinter  # noqa: E402
from metafeatures.summary import content_hash  # noqa: E402

SETUPS = (("mobilenet_v2", "imagenet"), ("resnet18", "random"))
SIZES = (1, 8, 64, 512)


def main() -> None:
    """Fingerprint the collection under each set-up (timed, cold and cached), evaluate, print a table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--collection", type=Path, default=None, help="default: generate the demo collection")
    ap.add_argument("--n-samples", type=int, default=1024)
    ap.add_argument("--resolution", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["METAREC_CACHE_DIR"] = str(Path(tmp) / "cache")  # cold caches: timings include decoding
        collection = a.collection or Path(tmp) / "demo"
        if a.collection is None:
            generate_demo_collection(collection, progress=False)
        datasets = open_collection(collection)
        hashes = {name: content_hash(ds) for name, ds in datasets.items()}
        print(f"{len(datasets)} datasets from {collection}, {a.n_samples} samples each, {a.resolution} px, "
              f"fit on half, 40 held-out batches per dataset and size")
        print(f"{'set-up':<24} {'matcher':<8} " + " ".join(f"{'b=' + str(b):>7}" for b in SIZES)
              + f" {'fit s':>6} {'fp s':>6}")
        for backbone, weights in SETUPS:
            fpr = Fingerprinter(backbone, weights, resolution=a.resolution)
            start = time.perf_counter()
            fps = {n: fpr.fingerprint(ds, hashes[n], n_samples=a.n_samples) for n, ds in datasets.items()}
            fp_seconds = time.perf_counter() - start
            result = evaluate_matchers(fps, SIZES)
            for name, accs in result.accuracy.items():
                print(f"{backbone + ' ' + weights:<24} {name:<8} " + " ".join(f"{accs[b]:>7.3f}" for b in SIZES)
                      + f" {result.fit_seconds[name]:>6.1f} {fp_seconds:>6.1f}")


if __name__ == "__main__":
    main()
