"""Training throughput per backbone at 64x64: metarec's trainer against a bare forward+backward loop.

Target (training-engine issue): trainer overhead <= 10 %, i.e. trainer img/s >= 0.9x the bare loop's,
measured in the same run (interleaved rounds, median). The bare loop is the framework ceiling: the same
model and optimizer, ready float tensors, no data handling, no evaluation. The trainer runs with an epoch
budget and its anytime evaluation; its img/s counts training steps only (``train_images_per_s``).

    .venv/bin/python bench/bench_trainer.py [--backbones mobilenet_v2,resnet18] [--n 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py

import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import FinetuneConfig  # noqa: E402
from finetune.model import build_model  # noqa: E402
from finetune.trainer import TrainOptions, finetune, make_optimizer  # noqa: E402
from metafeatures.datasets import open_dataset  # noqa: E402


def make_dataset(root: Path, n: int, size: int) -> Path:
    """An uncompressed .npz of n colour images in 4 classes (decoding is not what is measured here)."""
    rng = np.random.default_rng(0)
    path = root / "bench.npz"
    np.savez(path, x=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), y=np.arange(n) % 4,
             split=np.array(["train"] * (n - 64) + ["test"] * 64))
    return path


def bare_loop(config: FinetuneConfig, n: int, size: int) -> float:
    """img/s of a plain training loop on ready tensors: the framework ceiling."""
    model = build_model(config.backbone, 4, pretrained=config.pretrained, head=config.head_spec(),
                        input_size=(size, size), seed=0)
    model.train()
    opt = make_optimizer(config, list(model.trainable_parameters()))
    x, y = torch.rand(n, 3, size, size), torch.randint(0, 4, (n,))
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for i in range(0, n, config.batch_size):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[i: i + config.batch_size]), y[i: i + config.batch_size]).backward()
        opt.step()
    return n / (time.perf_counter() - start)


def main() -> None:
    """Interleave bare and trainer rounds per backbone; print img/s and the ratio."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbones", default="mobilenet_v2,resnet18,efficientnet_b0")
    ap.add_argument("--n", type=int, default=512, help="training images per round (one epoch)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["METAREC_CACHE_DIR"] = str(Path(tmp) / "cache")
        ds = open_dataset(make_dataset(Path(tmp), a.n + 64, a.size))
        for backbone in a.backbones.split(","):
            config = FinetuneConfig(backbone=backbone, pretrained="none", input_size=a.size, batch_size=32)
            finetune(config, ds, TrainOptions(epochs=0.1))  # warm-up and decode cache
            bare, trainer = [], []
            for _ in range(a.rounds):
                bare.append(bare_loop(config, a.n, a.size))
                result = finetune(config, ds, TrainOptions(epochs=1.0, save_checkpoint=False))
                trainer.append(result.train_images_per_s)
            rows.append((backbone, statistics.median(bare), statistics.median(trainer)))
    print(f"training at {a.size}x{a.size}, batch 32, {a.n} images per round, 2 threads, median of {a.rounds} rounds, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"{'backbone':<18} {'bare loop img/s':>16} {'trainer img/s':>14} {'ratio':>6}")
    for name, b, t in rows:
        print(f"{name:<18} {b:>16.1f} {t:>14.1f} {t / b:>6.2f}")


if __name__ == "__main__":
    main()
