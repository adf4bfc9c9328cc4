"""``metarec datasets summary|demo|fetch|derive|meta-collection``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from metarec.commands._common import emit_json, note, show_progress


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``datasets`` command group."""
    p = sub.add_parser("datasets", help="inspect, generate or fetch datasets")
    dsub = p.add_subparsers(dest="datasets_cmd", required=True, metavar="{summary,demo,fetch,derive,meta-collection}")

    s = dsub.add_parser("summary", help="validate a dataset and summarise it (decodes every image)")
    s.add_argument("dataset", type=Path, help="image folder, folder with manifest.csv, .csv or .npz, or a video "
                                              "folder (<class>/<clip folder of frames or .mp4/.avi/.webm>)")
    s.add_argument("--strict", action="store_true", help="fail on the first unreadable file instead of skipping")
    s.add_argument("--max-edge", type=int, default=128, help="longer-edge cap of the adaptive target size")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_summary)

    d = dsub.add_parser("demo", help="generate the offline demo collection")
    d.add_argument("--out", type=Path, required=True, help="output directory")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--overwrite", action="store_true", help="replace existing demo datasets")
    d.add_argument("--video", action="store_true",
                   help="generate the video demo datasets (video_*) instead; may share --out with the image demo")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.set_defaults(func=cmd_demo)

    f = dsub.add_parser("fetch", help="download a torchvision dataset and convert it to an image folder")
    f.add_argument("name", help="mnist, fashionmnist, kmnist, cifar10, cifar100, svhn, eurosat, ...")
    f.add_argument("--out", type=Path, required=True, help="output image-folder directory")
    f.add_argument("--download-root", type=Path, default=None, help="where torchvision keeps raw files")
    f.add_argument("--json", action="store_true", help="print JSON")
    f.set_defaults(func=cmd_fetch)

    v = dsub.add_parser("derive", help="write seeded ZAP-style variants of a dataset (or of every dataset of a "
                                       "collection with --collection)")
    v.add_argument("source", type=Path, help="a dataset, or a collection with --collection")
    v.add_argument("--out", type=Path, required=True, help="collection folder the variants are written into")
    v.add_argument("--n", type=int, default=4, help="variants per source (1-1000)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--max-images", type=int, default=600, help="images per variant at most (train + test)")
    v.add_argument("--collection", action="store_true", help="SOURCE is a collection: derive from each dataset")
    v.add_argument("--overwrite", action="store_true", help="replace existing variants")
    v.add_argument("--json", action="store_true", help="print JSON")
    v.set_defaults(func=cmd_derive)

    m = dsub.add_parser("meta-collection", help="build the default meta-collection: variants of the offline demo "
                                                "sources (10 image + 4 video), 48 datasets in 14 groups")
    m.add_argument("--out", type=Path, required=True, help="output collection folder (sources go to OUT/.sources)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--per-image-source", type=int, default=4, help="variants of each image demo dataset")
    m.add_argument("--per-video-source", type=int, default=2, help="variants of each video demo dataset")
    m.add_argument("--max-images", type=int, default=600, help="images per variant at most (train + test)")
    m.add_argument("--overwrite", action="store_true", help="regenerate sources and replace existing variants")
    m.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(func=cmd_meta_collection)


def cmd_summary(args: argparse.Namespace) -> int:
    """Print a dataset's summary (table or JSON)."""
    from metafeatures.datasets import open_dataset
    from metafeatures.summary import summarize

    ds = open_dataset(args.dataset, strict=args.strict)
    summary = summarize(ds, max_edge=args.max_edge, progress=show_progress(args))
    if args.json:
        emit_json(summary.model_dump(mode="json"))
        return 0
    unit = "clips" if summary.video is not None else "images"
    print(f"{summary.name}: {summary.n_items} {unit}, {summary.n_classes} classes, layout {summary.layout}, "
          f"{'colour' if summary.channels == 3 else 'grey'}")
    if summary.video is not None:
        v = summary.video
        fps = f"{v.fps_mean:g} fps ({v.clips_with_fps} clips)" if v.fps_mean is not None else "fps unknown"
        print(f"  frames per clip {v.frames_mean:g} (min {v.frames_min}, max {v.frames_max}), {fps}, "
              f"frame window {v.window}")
    print(f"  size {summary.mean_height:.1f}±{summary.std_height:.1f} x {summary.mean_width:.1f}±"
          f"{summary.std_width:.1f} px, target {summary.target_size[0]}x{summary.target_size[1]}")
    print(f"  splits {summary.split_counts}")
    print("  classes " + ", ".join(f"{k}:{v}" for k, v in summary.class_counts.items()))
    print(f"  content hash {summary.content_hash[:16]}…, skipped {summary.skipped}")
    if summary.group is not None and summary.derivation is not None:
        d = summary.derivation
        print(f"  derived from {summary.group} (seed {d['seed']}, variant {d['index']}): scale {d['scale']}, "
              f"{d['colour']}, crop {d['crop']}, noise {d['noise']}, train/class {d['train_per_class']}")
    for s in summary.skipped_files[:20]:
        print(f"    skipped {s.path}: {s.reason}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the demo collection."""
    from metafeatures.demo import generate_demo_collection
    from metafeatures.demo_video import generate_video_demo

    generate = generate_video_demo if args.video else generate_demo_collection
    names = generate(args.out, seed=args.seed, progress=show_progress(args), overwrite=args.overwrite)
    if args.json:
        emit_json({"out": str(args.out), "datasets": names})
    else:
        note(f"wrote {len(names)} datasets to {args.out}: {', '.join(names)}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download and convert a torchvision dataset."""
    from metafeatures.fetch import fetch_dataset

    out = fetch_dataset(args.name, args.out, download_root=args.download_root, progress=show_progress(args))
    if args.json:
        emit_json({"name": args.name, "out": str(out)})
    else:
        note(f"wrote {args.name} to {out}")
    return 0


def _report_variants(args: argparse.Namespace, paths: list[Path]) -> int:
    """Print the written variants with their group (JSON or one line each)."""
    from metafeatures.derive import read_derivation

    rows: list[dict[str, Any]] = []
    for path in paths:
        found = read_derivation(path)
        rows.append({"name": path.name, "path": str(path), "group": found.group if found else None,
                     "derivation": found.to_dict() if found else None})
    if args.json:
        emit_json({"out": str(args.out), "datasets": rows})
    else:
        for r in rows:
            d = r["derivation"] or {}
            note(f"{r['name']}: group {r['group']}, {len(d.get('classes', []))} classes, train/class "
                 f"{d.get('train_per_class')}, scale {d.get('scale')}, {d.get('colour')}, crop {d.get('crop')}, "
                 f"noise {d.get('noise')}")
        note(f"wrote {len(rows)} datasets from {len({r['group'] for r in rows})} group(s) to {args.out}")
    return 0


def cmd_derive(args: argparse.Namespace) -> int:
    """Derive variants of one dataset or of a whole collection."""
    from metafeatures.derive import derive_collection, derive_dataset

    if args.collection:
        paths = derive_collection(args.source, args.out, args.n, seed=args.seed, max_images=args.max_images,
                                  overwrite=args.overwrite, progress=show_progress(args))
    else:
        paths = derive_dataset(args.source, args.out, args.n, seed=args.seed, max_images=args.max_images,
                               overwrite=args.overwrite)
    return _report_variants(args, paths)


def cmd_meta_collection(args: argparse.Namespace) -> int:
    """Build the default meta-collection from the offline demo sources."""
    from metafeatures.derive import build_meta_collection

    paths = build_meta_collection(args.out, seed=args.seed, per_image_source=args.per_image_source,
                                  per_video_source=args.per_video_source, max_images=args.max_images,
                                  overwrite=args.overwrite, progress=show_progress(args))
    return _report_variants(args, paths)
