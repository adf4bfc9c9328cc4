"""Video throughput on this machine: fingerprinting clips/s, training steps/s and clips/s, time to first prediction.

Uses the generated video demo datasets (written to a temporary folder, or ``--collection``), the
fingerprint network of the demo portfolio (MobileNetV2, ImageNet weights when installed, else seeded
random weights) at 64 px, and fine-tunes MobileNetV2 with both video heads under a short wall-clock budget.
"Cold" runs start with an empty cache (decode every clip); "warm" runs read the decoded-clip cache.

    .venv/bin/python bench/bench_video.py [--datasets video_motion,video_flicker,video_shapes] [--budget 15]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import FinetuneConfig  # noqa: E402
from finetune.trainer import TrainOptions, finetune  # noqa: E402
from metafeatures.backbones import find_imagenet_file, get_backbone  # noqa: E402
from metafeatures.datasets import open_dataset  # noqa: E402
from metafeatures.demo_video import generate_video_demo  # noqa: E402
from metafeatures.errors import WeightsNotFoundError  # noqa: E402
from metafeatures.fingerprint import Fingerprinter  # noqa: E402
from metafeatures.summary import summarize  # noqa: E402


def imagenet_available() -> bool:
    """Whether MobileNetV2's ImageNet file is installed (the bench then uses it, as the portfolio does)."""
    try:
        find_imagenet_file(get_backbone("mobilenet_v2"))
        return True
    except WeightsNotFoundError:
        return False


def fresh_cache(root: Path) -> None:
    """Point metarec's cache at an empty folder (a cold start)."""
    shutil.rmtree(root, ignore_errors=True)
    os.environ["METAREC_CACHE_DIR"] = str(root)


def main() -> None:
    """Print one table row per dataset and measurement."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--collection", type=Path, default=None, help="folder with the video demo datasets")
    ap.add_argument("--datasets", default="video_motion,video_flicker,video_shapes")
    ap.add_argument("--budget", type=float, default=15.0, help="seconds per fine-tune")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    names = args.datasets.split(",")
    collection = args.collection
    if collection is None:
        collection = tmp / "demo"
        generate_video_demo(collection, progress=False, only=names)
    weights = "imagenet" if imagenet_available() else "random"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fingerprint weights: {weights}")
    print("| dataset | clips | frames/clip | window | train size | measurement | value |")
    print("|---|---:|---:|---|---|---|---:|")
    for name in names:
        ds = open_dataset(collection / name)
        s = summarize(ds)
        assert s.video is not None
        row = f"| {name} | {s.n_items} | {s.video.frames_mean:g} | {s.video.window} | " \
              f"{s.target_size[0]}x{s.target_size[1]} |"
        fpr = Fingerprinter("mobilenet_v2", weights, resolution=64)
        for label in ("cold", "warm"):
            if label == "cold":
                fresh_cache(tmp / f"cache-{name}")
            start = time.perf_counter()
            fpr.fingerprint(ds, s.content_hash, n_samples=len(ds), use_cache=True)
            seconds = time.perf_counter() - start
            what = "decode + select + forward" if label == "cold" else "forward from decoded-clip cache"
            print(f"{row} fingerprint clips/s ({label}: {what}) | {len(ds) / seconds:.1f} |")
            # drop the fingerprint file but keep decoded clips, so "warm" measures the forward pass
            shutil.rmtree(Path(os.environ["METAREC_CACHE_DIR"]) / "fingerprints", ignore_errors=True)
        for head in ("temporal_conv", "average"):
            cfg = FinetuneConfig(backbone="mobilenet_v2", pretrained=weights if weights == "imagenet" else "none",
                                 batch_size=16, video_head=head)
            for label in ("cold", "warm"):
                if label == "cold":
                    fresh_cache(tmp / f"cache-{name}-{head}")
                result = finetune(cfg, ds, TrainOptions(budget_s=args.budget, save_checkpoint=False))
                if label == "cold":
                    print(f"{row} time to first prediction, {head} (cold) | {result.return_time:.1f} s |")
                    continue
                seen = result.epochs * result.n_train  # clips trained on; train_images_per_s counts clips here
                train_seconds = seen / result.train_images_per_s if result.train_images_per_s else float("inf")
                steps_per_s = result.steps / train_seconds
                print(f"{row} time to first prediction, {head} (warm) | {result.return_time:.1f} s |")
                print(f"{row} training clips/s, {head} (batch 16) | {result.train_images_per_s:.1f} |")
                print(f"{row} training steps/s, {head} | {steps_per_s:.2f} |")
                print(f"{row} accuracy after {args.budget:g} s, {head} | {result.final_accuracy:.3f} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
