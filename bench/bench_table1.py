"""The shape of seed 000 Table I on the demo collection at a small time budget.

Return time (first prediction), ALC and final NAUC for MobileNetV2, EfficientNet-mini, EfficientNet-B0 and
EfficientNet-Lite0 (two FC layers of 512, as in the table). MobileNetV2 and EfficientNet-Lite0 have ImageNet
weights here, so all run from scratch (``pretrained=none``) for a like-for-like comparison, plus those two
with ImageNet weights. The set-ups are interleaved per dataset (the shared machine's speed drifts). The ALC
time axis is scaled to the budget: T = budget, t0 = budget / 20 (AutoDL's 1200 s / 60 s ratio).

    .venv/bin/python bench/bench_table1.py [--datasets hues,shapes,textures] [--budget-s 20]
        [--setups mobilenet_v2:imagenet,efficientnet_lite0:imagenet]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py

import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import FinetuneConfig  # noqa: E402
from finetune.data import prepare  # noqa: E402
from finetune.trainer import TrainOptions, finetune  # noqa: E402
from metafeatures.datasets import open_collection  # noqa: E402
from metafeatures.demo import generate_demo_collection  # noqa: E402

SETUPS = (("mobilenet_v2", "none"), ("efficientnet_mini", "none"), ("efficientnet_b0", "none"),
          ("efficientnet_lite0", "none"), ("mobilenet_v2", "imagenet"), ("efficientnet_lite0", "imagenet"))


def main() -> None:
    """Run every set-up on every dataset and print one block per metric."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--collection", type=Path, default=None, help="default: generate the demo collection")
    ap.add_argument("--datasets", default="hues,shapes,textures")
    ap.add_argument("--budget-s", type=float, default=20.0)
    ap.add_argument("--setups", default=None, help="backbone:weights pairs, comma-separated (default: all)")
    a = ap.parse_args()
    setups = SETUPS if a.setups is None else tuple(tuple(p.split(":")) for p in a.setups.split(","))
    torch.set_num_threads(2)
    names = a.datasets.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        collection = a.collection or Path(tmp) / "demo"
        if a.collection is None:
            generate_demo_collection(collection, progress=False, only=names)
        datasets = open_collection(collection)
        results = {}
        for name in names:  # set-ups interleaved per dataset
            prepare(datasets[name])  # decode once, so no set-up pays the cold decode
            for backbone, pretrained in setups:
                config = FinetuneConfig(backbone=backbone, pretrained=pretrained, head_layers=2, head_width=512)
                opts = TrainOptions(budget_s=a.budget_s, time_budget=a.budget_s, t0=a.budget_s / 20,
                                    save_checkpoint=False)
                results[(backbone, pretrained, name)] = finetune(config, datasets[name], opts)
    print(f"budget {a.budget_s:g} s per run (setup included), ALC with T={a.budget_s:g} s, t0={a.budget_s / 20:g} s, "
          f"CPU, 2 threads")
    header = f"{'backbone':<18} {'weights':<9} {'metric':<12}" + "".join(f"{n:>14}" for n in names)
    print(header)
    print("-" * len(header))
    for backbone, pretrained in setups:
        for metric, fmt in (("return time", "{:.2f}s"), ("ALC", "{:.4f}"), ("NAUC", "{:.4f}")):
            cells = []
            for n in names:
                r = results[(backbone, pretrained, n)]
                value = {"return time": r.return_time, "ALC": r.alc, "NAUC": r.final_nauc}[metric]
                cells.append(fmt.format(value))
            print(f"{backbone:<18} {pretrained:<9} {metric:<12}" + "".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
