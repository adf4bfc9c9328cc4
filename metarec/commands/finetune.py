"""``metarec finetune DATASET (--config FILE.json | --backbone NAME [options]) --budget-s S --out DIR``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from metarec.commands._common import emit_json, note, show_progress

# FinetuneConfig fields settable from the command line, with their parsers.
CONFIG_OPTIONS: dict[str, type] = {
    "backbone": str, "pretrained": str, "strategy": str, "last_k": int, "optimizer": str, "batch_size": int,
    "lr": float, "dropout": float, "head_layers": int, "head_width": int, "max_edge": int, "seed": int,
    "video_head": str,
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``finetune`` command."""
    p = sub.add_parser("finetune", help="fine-tune a configuration on a dataset under a budget; report ALC")
    p.add_argument("dataset", type=Path, help="image folder, folder with manifest.csv, .csv or .npz, or a video "
                                              "folder (video datasets take --video-head temporal_conv|average)")
    p.add_argument("--config", type=Path, default=None, help="FinetuneConfig JSON; options below override it")
    for name, kind in CONFIG_OPTIONS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None)
    p.add_argument("--head-conv1x1", dest="head_conv1x1", action="store_true", default=None)
    p.add_argument("--input-size", dest="input_size", default=None, help="'adaptive' (seed 000) or a square side")
    p.add_argument("--budget-s", type=float, default=None, help="wall-clock budget in seconds (setup included)")
    p.add_argument("--epochs", type=float, default=None, help="epoch budget (alone or with --budget-s)")
    p.add_argument("--out", type=Path, required=True, help="run directory: metrics.json, model.pt, curve.png")
    p.add_argument("--alc-time-budget", type=float, default=1200.0, help="T of the ALC time axis (AutoDL: 1200)")
    p.add_argument("--t0", type=float, default=60.0, help="t0 of the ALC time axis (AutoDL: 60; seed 001: 20)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out share when the dataset has no test split")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when present)")
    p.add_argument("--no-save", dest="save", action="store_false", help="do not write the checkpoint")
    p.add_argument("--json", action="store_true", help="print the result summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_finetune)


def build_config(args: argparse.Namespace) -> object:
    """FinetuneConfig from --config (if any) with command-line options layered on top."""
    from finetune.config import FinetuneConfig

    base = json.loads(args.config.read_text()) if args.config else {}
    overrides = {k: getattr(args, k) for k in [*CONFIG_OPTIONS, "head_conv1x1", "input_size"]
                 if getattr(args, k) is not None}
    if isinstance(overrides.get("input_size"), str) and overrides["input_size"].isdigit():
        overrides["input_size"] = int(overrides["input_size"])
    return FinetuneConfig.from_dict({**base, **overrides})


def cmd_finetune(args: argparse.Namespace) -> int:
    """Run the trainer and print/save the result."""
    from finetune.plots import plot_curve
    from finetune.trainer import TrainOptions, finetune

    config = build_config(args)
    options = TrainOptions(budget_s=args.budget_s, epochs=args.epochs, time_budget=args.alc_time_budget,
                           t0=args.t0, test_fraction=args.test_fraction, device=args.device,
                           save_checkpoint=args.save, show_progress=show_progress(args))
    result = finetune(config, args.dataset, options, out_dir=args.out)  # type: ignore[arg-type]
    plot_curve(result, args.out / "curve.png")
    (args.out / "args.json").write_text(json.dumps(vars(args), indent=2, default=str))
    summary = {k: getattr(result, k) for k in ("status", "reason", "dataset", "alc", "final_nauc", "final_accuracy",
                                               "return_time", "wall_time", "steps", "epochs", "train_images_per_s",
                                               "device", "checkpoint")}
    summary.update(config=result.config, metrics=str(args.out / "metrics.json"), curve=str(args.out / "curve.png"))
    if args.json:
        emit_json(summary)
    else:
        print(f"{result.dataset}: {result.status}, ALC {result.alc:.4f}, final NAUC {result.final_nauc:.4f}, "
              f"accuracy {result.final_accuracy:.3f}, first prediction at {result.return_time:.1f} s, "
              f"{result.steps} steps ({result.epochs:.2f} epochs) on {result.device}")
        note(f"wrote {args.out / 'metrics.json'} and {args.out / 'curve.png'}")
    return 0
