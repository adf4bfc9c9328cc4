"""``metarec fingerprint DATASET --out FILE.npz``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from metarec.commands._common import add_fingerprint_options, emit_json, make_fingerprinter, note, show_progress


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``fingerprint`` command."""
    p = sub.add_parser("fingerprint", help="compute a dataset's fingerprint batch with a frozen backbone")
    p.add_argument("dataset", type=Path, help="image folder, folder with manifest.csv, .csv or .npz")
    p.add_argument("--out", type=Path, required=True, help="output .npz (features + spec + provenance)")
    add_fingerprint_options(p, n_samples=512)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_fingerprint)


def cmd_fingerprint(args: argparse.Namespace) -> int:
    """Sample, fingerprint and save."""
    from metafeatures.datasets import open_dataset
    from metafeatures.summary import content_hash

    ds = open_dataset(args.dataset)
    fingerprinter = make_fingerprinter(args)
    start = time.perf_counter()
    fp = fingerprinter.fingerprint(ds, content_hash(ds), n_samples=args.n_samples, seed=args.seed,
                                   use_cache=not args.no_cache, progress=show_progress(args))
    seconds = time.perf_counter() - start
    out = args.out if args.out.suffix == ".npz" else args.out.with_suffix(".npz")
    fp.save(out)
    report = {"out": str(out), "dataset": fp.dataset, "n": len(fp.features), "feature_dim": fp.spec.feature_dim,
              "content_hash": fp.content_hash, "spec": fp.spec.to_dict(), "seconds": round(seconds, 3),
              "skipped": [s.path for s in ds.skipped]}
    if args.json:
        emit_json(report)
    else:
        note(f"{fp.dataset}: {len(fp.features)} fingerprints of dim {fp.spec.feature_dim} "
             f"({fp.spec.backbone}, {fp.spec.weights}) -> {out} in {seconds:.1f} s")
    return 0
