"""Cost of zoo backbones against MobileNetV2: parameters, FLOPs, and batch-1 / batch-32 latency.

The models are timed in interleaved rounds (the shared machine's speed drifts) and the median per model
is reported with its ratio to MobileNetV2 measured in the same run.

    .venv/bin/python bench/bench_zoo_cost.py [--models mobilenet_v2,efficientnet_lite0,efficientnet_b0]
        [--sizes 64,224] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py

import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.heads import HeadSpec  # noqa: E402
from finetune.model import build_model  # noqa: E402
from finetune.zoo import count_flops, count_parameters, measure_latency  # noqa: E402


def main() -> None:
    """Print one row per model and input size."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mobilenet_v2,efficientnet_lite0,efficientnet_b0")
    ap.add_argument("--sizes", default="64,224")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(2)
    names = a.models.split(",")
    print(f"{'model':<20} {'px':>4} {'params':>11} {'MFLOPs':>8} {'b1 ms':>8} {'b32 ms':>9} {'b1 ×MNv2':>9} "
          f"{'b32 ×MNv2':>10}")
    for size in (int(s) for s in a.sizes.split(",")):
        models = {n: build_model(n, 10, pretrained="none", head=HeadSpec(), input_size=(size, size)).eval()
                  for n in names}
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(a.rounds):
            for n, m in models.items():  # interleaved
                for batch in (1, 32):
                    times.setdefault((n, batch), []).append(measure_latency(m, (size, size), batch, repeats=3))
        med = {k: 1000 * statistics.median(v) for k, v in times.items()}
        for n, m in models.items():
            print(f"{n:<20} {size:>4} {count_parameters(m):>11,} {count_flops(n, (size, size)) / 1e6:>8.1f} "
                  f"{med[(n, 1)]:>8.2f} {med[(n, 32)]:>9.1f} {med[(n, 1)] / med[('mobilenet_v2', 1)]:>9.2f} "
                  f"{med[(n, 32)] / med[('mobilenet_v2', 32)]:>10.2f}")


if __name__ == "__main__":
    main()
