"""Fingerprint throughput (images/s) against a bare torchvision forward on the same tensors, same run.

Target (foundation issue): metarec's pipeline reaches >= 0.9x the bare ResNet18 forward on pre-made
tensors at the same resolution. Two metarec columns: the first pass over a dataset (decode PNG files,
resize, normalise, forward, write caches) and a later pass under a new spec that reads the decoded-image
cache. Rounds are interleaved and the median is reported because the machine is shared and noisy.

    .venv/bin/python bench/bench_fingerprint.py [--n 512] [--resolutions 32,64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import models

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metafeatures.datasets import open_dataset  # noqa: E402
from metafeatures.fingerprint import Fingerprinter, cache_path  # noqa: E402
from metafeatures.paths import cache_dir  # noqa: E402
from metafeatures.summary import content_hash  # noqa: E402


def write_pngs(root: Path, n: int, size: int) -> Path:
    """n colour PNGs of size x size in two classes: files to decode, like a real image folder."""
    rng = np.random.default_rng(0)
    for k in range(n):
        cls = root / f"c{k % 2}"
        cls.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(cls / f"{k:05d}.png")
    return root


def bare_forward(n: int, res: int, batch: int) -> float:
    """images/s of a plain torchvision ResNet18 (fc removed) on ready float tensors."""
    model = models.resnet18(weights=None)
    model.fc = torch.nn.Identity()  # type: ignore[assignment]
    model.eval()
    x = torch.rand(n, 3, res, res)
    with torch.inference_mode():
        model(x[:batch])  # warm-up, so the baseline is at its best
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, n, batch):
            model(x[i: i + batch])
    return n / (time.perf_counter() - start)


def pipeline(ds_path: Path, n: int, res: int, batch: int) -> tuple[float, float]:
    """images/s of metarec's Fingerprinter.fingerprint: first pass (decode PNGs) and with decoded cache."""
    fpr = Fingerprinter("resnet18", "random", resolution=res, batch_size=batch)
    ds = open_dataset(ds_path)
    h = content_hash(ds)
    shutil.rmtree(cache_dir(), ignore_errors=True)
    start = time.perf_counter()
    fpr.fingerprint(ds, h, n_samples=n)
    first = n / (time.perf_counter() - start)
    cache_path(h, fpr.spec, n, 0).unlink()
    start = time.perf_counter()
    fpr.fingerprint(ds, h, n_samples=n)
    cached = n / (time.perf_counter() - start)
    return first, cached


def main() -> None:
    """Run interleaved rounds and print the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--resolutions", default="32,64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["METAREC_CACHE_DIR"] = str(Path(tmp) / "cache")
        for res in [int(r) for r in a.resolutions.split(",")]:
            ds_path = write_pngs(Path(tmp) / f"r{res}", a.n, res)
            bare, full, fwd = [], [], []
            for _ in range(a.rounds):
                bare.append(bare_forward(a.n, res, a.batch))
                f, w = pipeline(ds_path, a.n, res, a.batch)
                full.append(f)
                fwd.append(w)
            b, f, w = (statistics.median(v) for v in (bare, full, fwd))
            rows.append((res, b, f, w))
    print(f"resnet18 fingerprints, {a.n} PNG images, batch {a.batch}, {a.threads} threads, "
          f"median of {a.rounds} interleaved rounds, device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"{'px':>4} {'bare fwd img/s':>15} {'metarec 1st pass':>17} {'ratio':>6} {'decoded cache':>14} "
          f"{'ratio':>6}")
    for res, b, f, w in rows:
        print(f"{res:>4} {b:>15.0f} {f:>17.0f} {f / b:>6.2f} {w:>14.0f} {w / b:>6.2f}")


if __name__ == "__main__":
    main()
