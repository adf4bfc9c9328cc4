"""``metarec matchers eval``: dataset-identification accuracy versus test batch size (seed 001 Fig. 5)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from metarec.commands._common import add_fingerprint_options, emit_json, make_fingerprinter, note, show_progress


def _int_list(text: str) -> list[int]:
    """Parse ``1,8,64`` into positive ints."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``matchers`` command group."""
    p = sub.add_parser("matchers", help="evaluate the dataset matchers")
    msub = p.add_subparsers(dest="matchers_cmd", required=True, metavar="{eval}")
    e = msub.add_parser("eval", help="fit on part of each dataset, identify held-out batches of each size")
    add_eval_arguments(e)


def add_eval_arguments(e: argparse.ArgumentParser) -> None:
    """Options of the matcher evaluation (shared by ``matchers eval`` and ``eval matchers``)."""
    e.add_argument("--collection", type=Path, required=True, help="directory of datasets")
    e.add_argument("--batch-sizes", type=_int_list, default=[1, 8, 32, 64, 128, 256, 512])
    e.add_argument("--matchers", default="kmeans,mlp,moments", help="comma-separated matcher names")
    e.add_argument("--fit-fraction", type=float, default=0.5, help="share of each dataset's samples used to fit")
    e.add_argument("--n-batches", type=int, default=40, help="held-out batches drawn per dataset and size")
    e.add_argument("--out-dir", type=Path, default=Path("runs/matchers-eval"),
                   help="where the PNG plot, the JSON result and the arguments are written")
    add_fingerprint_options(e, n_samples=1024)
    e.add_argument("--json", action="store_true", help="print JSON")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Fingerprint every dataset of the collection (cached), then evaluate the matchers."""
    from tqdm import tqdm

    from metafeatures.datasets import open_collection
    from metafeatures.evaluation import evaluate_matchers, plot_accuracy
    from metafeatures.summary import content_hash

    datasets = open_collection(args.collection)
    fingerprinter = make_fingerprinter(args)
    fps = {}
    for name, ds in tqdm(datasets.items(), desc="fingerprint datasets", unit="ds", disable=not show_progress(args)):
        fps[name] = fingerprinter.fingerprint(ds, content_hash(ds), n_samples=args.n_samples, seed=args.seed,
                                              use_cache=not args.no_cache)
    result = evaluate_matchers(fps, args.batch_sizes, matchers=[m for m in args.matchers.split(",") if m],
                               fit_fraction=args.fit_fraction, n_batches=args.n_batches, seed=args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    plot = plot_accuracy(result, args.out_dir / "matchers_eval.png")
    payload = {**result.to_json(), "plot": str(plot)}
    (args.out_dir / "matchers_eval.json").write_text(json.dumps(payload, indent=2))
    (args.out_dir / "args.json").write_text(json.dumps(vars(args), indent=2, default=str))
    if args.json:
        emit_json(payload)
    else:
        print(f"Dataset identification accuracy on held-out batches ({len(fps)} datasets, "
              f"{result.n_batches} batches per dataset and size; fingerprints: {result.spec['backbone']}, "
              f"{result.spec['weights']}, {result.spec['resolution']} px)")
        print(result.table())
        note(f"plot: {plot}")
    return 0
