"""Helpers shared by CLI subcommands: JSON output, progress switch, fingerprint options."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout."""
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def note(message: str) -> None:
    """A human-facing line on stderr (keeps stdout clean for --json)."""
    print(message, file=sys.stderr)


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars go to stderr when it is a terminal, unless --quiet."""
    return sys.stderr.isatty() and not getattr(args, "quiet", False)


def add_fingerprint_options(p: argparse.ArgumentParser, n_samples: int) -> None:
    """Options that define a FingerprintSpec and how many images are sampled."""
    p.add_argument("--backbone", default="auto",
                   help="resnet18 | mobilenet_v2 | auto (resnet18 if its ImageNet file is installed, "
                   "else mobilenet_v2)")
    p.add_argument("--weights", default="imagenet", help="imagenet | random | PATH to a state dict")
    p.add_argument("--resolution", type=int, default=64, help="square input side in pixels (default 64 on CPU)")
    p.add_argument("--n-samples", type=int, default=n_samples, help="images sampled per dataset")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (and seed of random weights)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when present)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--no-cache", action="store_true", help="recompute fingerprints even if cached")


def make_fingerprinter(args: argparse.Namespace) -> Any:
    """Build the Fingerprinter the options describe, announcing an automatic backbone choice."""
    from metafeatures.backbones import default_backbone
    from metafeatures.fingerprint import Fingerprinter

    backbone = args.backbone
    if backbone == "auto":
        backbone, why = default_backbone(args.weights)
        note(f"fingerprint backbone: {why}")
    return Fingerprinter(backbone=backbone, weights=args.weights, resolution=args.resolution,
                         batch_size=args.batch_size, device=args.device, threads=args.threads, seed=args.seed)
