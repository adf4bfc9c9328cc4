"""``metarec zoo list``: the fine-tuning backbones with parameters, FLOPs and (on request) CPU latency;
searched entries (``nas:<name>``, from ``metarec nas search``) follow the built-in ones."""

from __future__ import annotations

import argparse
from typing import Any

from metarec.commands._common import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``zoo`` command group."""
    p = sub.add_parser("zoo", help="the model zoo used for fine-tuning")
    zsub = p.add_subparsers(dest="zoo_cmd", required=True, metavar="{list}")
    ls = zsub.add_parser("list", help="backbones with parameter count, FLOPs and weights availability")
    ls.add_argument("--input-size", type=int, default=64, help="square input side for FLOPs and latency")
    ls.add_argument("--n-classes", type=int, default=10)
    ls.add_argument("--latency", action="store_true", help="also measure CPU latency (batch 1, median of 10)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    """Print one row per zoo entry."""
    from finetune.heads import HeadSpec
    from finetune.model import build_model
    from finetune.nas.entry import list_entries
    from finetune.zoo import count_flops, count_parameters, get_entry, list_models, measure_latency
    from metafeatures.backbones import find_weights_file
    from metafeatures.errors import WeightsNotFoundError

    size = (args.input_size, args.input_size)
    rows: list[dict[str, Any]] = []
    searched = {e.zoo_name: e for e in list_entries()}
    for name in [*list_models(), *searched]:
        entry = get_entry(name)
        if args.input_size < entry.min_input_size:
            rows.append({"name": name, "error": f"needs at least {entry.min_input_size} px"})
            continue
        model = build_model(name, args.n_classes, pretrained="none", head=HeadSpec(), input_size=size)
        try:
            weights = str(find_weights_file(entry.weights, name)) if entry.weights is not None else "none exist"
        except WeightsNotFoundError:
            weights = "not installed"
        if name in searched:
            weights = f"none (searched weights: {searched[name].weights_path})"
        row = {"name": name, "params": count_parameters(model), "flops": count_flops(name, size, args.n_classes),
               "min_input_size": entry.min_input_size, "imagenet_weights": weights}
        if args.latency:
            row["latency_ms"] = round(1000 * measure_latency(model, size), 2)
        rows.append(row)
    if args.json:
        emit_json(rows)
        return 0
    print(f"{'name':<20} {'params':>12} {'MFLOPs':>9} {'min px':>7} " + ("latency ms  " if args.latency else "")
          + "ImageNet weights")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<20} {r['error']}")
            continue
        lat = f"{r['latency_ms']:>10.2f}  " if args.latency else ""
        print(f"{r['name']:<20} {r['params']:>12,} {r['flops'] / 1e6:>9.1f} {r['min_input_size']:>7} {lat}"
              f"{r['imagenet_weights']}")
    return 0
