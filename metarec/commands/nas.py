"""``metarec nas search | list | show``: seed 004's latency-aware architecture search, as zoo entries ``nas:<name>``."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from metarec.commands._common import emit_json, note, show_progress


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``nas`` command group."""
    p = sub.add_parser("nas", help="latency-aware architecture search (seed 004): searched zoo backbones")
    nsub = p.add_subparsers(dest="nas_cmd", required=True, metavar="{search,list,show}")
    s = nsub.add_parser("search", help="search a backbone on a dataset for a latency weight or budget")
    s.add_argument("dataset", type=Path, help="image dataset (folder, manifest folder, .csv or .npz)")
    s.add_argument("--beta", type=float, default=None, help="latency weight per ms in CE + beta*LAT (0: no latency)")
    s.add_argument("--latency-budget-ms", type=float, default=None,
                   help="latency budget at batch 1 on this device (instead of --beta)")
    s.add_argument("--budget-s", type=float, required=True, help="wall-clock budget in seconds (search + training)")
    s.add_argument("--out", type=Path, required=True, help="run folder: entry.json, model.pt, search.json, args.json")
    s.add_argument("--name", default=None, help="entry name (nas:<name>); default <dataset>-<seed>-<digest>")
    s.add_argument("--overwrite", action="store_true", help="replace --out and an installed entry of that name")
    s.add_argument("--no-install", dest="install", action="store_false",
                   help="only write --out; do not install into $METAREC_NAS_DIR")
    s.add_argument("--no-feedback", dest="feedback", action="store_false", help="turn the feedback blocks off")
    s.add_argument("--input-size", type=int, default=32, help="square input side (default 32)")
    s.add_argument("--channels", type=int, default=16, help="stem width C (cells double it at reductions)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when present)")
    s.add_argument("--threads", type=int, default=1, help="torch CPU threads (latencies are measured with these)")
    s.add_argument("--latency-table", type=Path, default=None,
                   help="reuse a latency_table.json measured on this device for this space")
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_search)
    ls = nsub.add_parser("list", help="installed searched entries")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    sh = nsub.add_parser("show", help="one installed entry in full (architecture, latency table, provenance)")
    sh.add_argument("name", help="nas:<name> or <name>")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_show)


def _default_name(dataset: Path, options: Any) -> str:
    import hashlib

    stem = re.sub(r"[^a-z0-9_.-]+", "-", dataset.stem.lower()).strip("-._")[:32] or "dataset"
    digest = hashlib.sha256(json.dumps(options.to_dict(), sort_keys=True).encode()).hexdigest()[:6]
    return f"{stem}-s{options.seed}-{digest}"


def cmd_search(args: argparse.Namespace) -> int:
    """Validate everything, search, write the run folder, install the entry, print the summary."""
    from finetune.nas.entry import check_name, install_entry, nas_dir, write_entry
    from finetune.nas.latency import LatencyTable
    from finetune.nas.search import SearchOptions, search
    from finetune.nas.space import SearchSpace
    from metafeatures.datasets import open_dataset
    from metafeatures.errors import OutputExistsError

    space = SearchSpace(input_size=args.input_size, channels=args.channels)
    options = SearchOptions(budget_s=args.budget_s, beta=args.beta, latency_budget_ms=args.latency_budget_ms,
                            feedback=args.feedback, space=space, seed=args.seed, device=args.device,
                            threads=args.threads)
    name = check_name(args.name if args.name is not None else _default_name(args.dataset, options))
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        raise OutputExistsError(args.out, "is not empty; pass --overwrite or another --out")
    if args.install and (nas_dir() / name).exists() and not args.overwrite:
        raise OutputExistsError(nas_dir() / name, f"a searched entry named {name!r} exists; "
                                                  "pass --overwrite or another --name")
    dataset = open_dataset(args.dataset)
    table = LatencyTable.load(args.latency_table) if args.latency_table else None
    result = search(dataset, options, table=table, progress=show_progress(args))
    args.out.mkdir(parents=True, exist_ok=True)
    write_entry(args.out, result, name)
    result.table.save(args.out / "latency_table.json")
    (args.out / "search.json").write_text(json.dumps({"history": result.history, "alphas": result.alphas}))
    (args.out / "args.json").write_text(json.dumps(vars(args), indent=2, default=str))
    installed = str(install_entry(args.out, name, overwrite=args.overwrite)) if args.install else None
    st = result.stats
    summary = {"name": "nas:" + name, "latency_ms": round(st["measured_ms"], 4),
               "predicted_latency_ms": round(st["predicted_ms"], 4), "latency_budget_ms": args.latency_budget_ms,
               "budget_met": st["budget_met"], "beta": args.beta, "params": st["params"], "flops": st["flops"],
               "macs": st["flops"] // 2, "test_accuracy": st["test_accuracy"], "genotype": result.genotype.to_dict(),
               "search_steps": st["steps"], "search_s": st["search_s"], "wall_s": st["wall_s"],
               "device": result.table.device, "out": str(args.out), "installed": installed}
    if args.json:
        emit_json(summary)
        return 0
    print(f"nas:{name}: {st['params']:,} params, {st['flops'] / 2e6:.2f} M MACs, latency {st['measured_ms']:.2f} ms "
          f"(predicted {st['predicted_ms']:.2f}), test accuracy {st['test_accuracy']:.3f}, "
          f"{st['steps']} search steps in {st['search_s']:.0f} s")
    print(f"stem {result.genotype.stem}; cells " + " | ".join(", ".join(c) for c in result.genotype.cells))
    if st["budget_met"] is False:
        note(f"the latency budget {args.latency_budget_ms} ms is below the fastest architecture of the space "
             f"({st['fastest_ms']:.2f} ms predicted): the fastest one was kept")
    note(f"wrote {args.out}" + (f"; installed as nas:{name} in {installed}" if installed else ""))
    return 0


def entry_row(entry: Any) -> dict[str, Any]:
    """The summary of one installed entry (shared with ``metarec zoo list``)."""
    meta = entry.meta
    return {"name": entry.zoo_name, "params": meta["params"], "flops": meta["flops"],
            "latency_ms": meta["latency"]["measured_ms"], "latency_device": meta["latency"]["device"],
            "input_size": meta["input_size"], "dataset": meta["dataset"].get("name"),
            "test_accuracy": meta["search"]["stats"].get("test_accuracy"), "weights": str(entry.weights_path),
            "created_at": meta["provenance"].get("created_at")}


def cmd_list(args: argparse.Namespace) -> int:
    """One row per installed entry."""
    from finetune.nas.entry import list_entries, nas_dir

    rows = [entry_row(e) for e in list_entries()]
    if args.json:
        emit_json(rows)
        return 0
    if not rows:
        print(f"no searched entries in {nas_dir()} (run `metarec nas search`)")
        return 0
    print(f"{'name':<32} {'params':>10} {'MFLOPs':>8} {'lat ms':>7} {'acc':>6}  dataset")
    for r in rows:
        print(f"{r['name']:<32} {r['params']:>10,} {r['flops'] / 1e6:>8.2f} {r['latency_ms']:>7.2f} "
              f"{r['test_accuracy']:>6.3f}  {r['dataset']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """The full entry.json of one installed entry (weights checked against their recorded sha256)."""
    from finetune.nas.entry import find_entry, load_entry

    entry = load_entry(find_entry(args.name).path, check_weights=True)
    if args.json:
        emit_json(entry.meta)
        return 0
    row = entry_row(entry)
    for key, value in row.items():
        print(f"{key:>16}: {value}")
    print(f"{'stem':>16}: {entry.genotype.stem}")
    for k, cell in enumerate(entry.genotype.cells):
        print(f"{'cell' + str(k + 1):>16}: {', '.join(cell)} ({entry.space.cells[k]})")
    return 0
