"""Seed 004's table on this machine: latency-aware search vs MobileNetV2 vs the search without latency term.

Measured in one run (latencies of all arms in the same interleaved rounds; training arms alternate):
  1. one latency table, then three searches on dataset A: no latency term (beta = 0), a loose budget
     (goal: 0.6x MobileNetV2's batch-1 latency) and a tight one (0.3x); search wall time and steps;
  2. params, MACs, latency at batch 1 and 64 of each backbone + the same head, and its accuracy after
     the same epoch budget from the same (random) initialisation on datasets A and B (`metarec finetune`'s
     trainer, pretrained=none, seed 0);
  3. merged vs unmerged meta-kernels: max output difference and speed (one op, an all-meta-kernel network,
     the searched networks);
  4. tight vs loose: measured latencies ordered like the budgets, each within 15 % of its prediction.

    .venv/bin/python bench/bench_nas.py --collection /tmp/demo [--datasets shapes,textures]
        [--search-budget-s 90] [--epochs 6] [--out runs/bench-nas]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.config import FinetuneConfig  # noqa: E402
from finetune.model import build_model  # noqa: E402
from finetune.nas.entry import install_entry, write_entry  # noqa: E402
from finetune.nas.latency import measure_table, time_modules  # noqa: E402
from finetune.nas.network import DerivedNet  # noqa: E402
from finetune.nas.ops import MetaKernelConv, merge_meta_kernels  # noqa: E402
from finetune.nas.search import SearchOptions, backbone_flops, extract, search  # noqa: E402
from finetune.nas.space import Genotype, SearchSpace  # noqa: E402
from finetune.trainer import TrainOptions, finetune  # noqa: E402
from finetune.zoo import count_parameters  # noqa: E402


def _model(name: str, n_classes: int, size: int) -> torch.nn.Module:
    return build_model(name, n_classes, pretrained="none", input_size=(size, size), seed=0).eval()


def latency_rows(names: list[str], n_classes: int, size: int) -> dict[str, dict[str, float]]:
    """Batch-1 and batch-64 ms of backbone + head, all arms in the same interleaved rounds."""
    models = {n: _model(n, n_classes, size) for n in names}
    one = torch.zeros(1, 3, size, size)
    b1 = time_modules({**{n: (m, one) for n, m in models.items()},
                       **{f"{n}/backbone": (m.backbone, one) for n, m in models.items()}}, torch.device("cpu"))
    b64 = time_modules({n: (m, torch.zeros(64, 3, size, size)) for n, m in models.items()}, torch.device("cpu"),
                       rounds=7)
    return {n: {"b1_ms": b1[n], "b64_ms": b64[n], "backbone_b1_ms": b1[f"{n}/backbone"],
                "params": count_parameters(models[n].backbone),
                "macs": backbone_flops(models[n].backbone, (size, size)) // 2} for n in names}


def merge_rows(genotypes: dict[str, Genotype], space: SearchSpace) -> dict[str, dict[str, float]]:
    """Unmerged vs merged meta-kernels: speed at batch 1 (same rounds) and the largest output difference."""
    size = space.input_size
    jobs: dict[str, tuple[torch.nn.Module, torch.Tensor]] = {}
    diffs: dict[str, float] = {}
    torch.manual_seed(0)
    op = MetaKernelConv(32, 32, 1).eval()
    x_op = torch.randn(1, 32, 16, 16)
    jobs["op/unmerged"], jobs["op/merged"] = (op, x_op), (op.merged().eval(), x_op)
    with torch.no_grad():
        diffs["op"] = float((op(x_op) - op.merged().eval()(x_op)).abs().max())
    for label, g in genotypes.items():
        unmerged = DerivedNet(space, g, merged=False).eval()
        merged = DerivedNet(space, g, merged=False).eval()
        merged.load_state_dict(unmerged.state_dict())
        merge_meta_kernels(merged)
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            diffs[label] = float((unmerged(x) - merged(x)).abs().max())
        jobs[f"{label}/unmerged"], jobs[f"{label}/merged"] = (unmerged, x), (merged, x)
    ms = time_modules(jobs, torch.device("cpu"))
    out = {}
    for label in ["op", *genotypes]:
        u, m = ms[f"{label}/unmerged"], ms[f"{label}/merged"]
        metas = 12 if label == "op" else sum(o == "meta_conv_7x7" for c in genotypes[label].cells for o in c)
        out[label] = {"unmerged_ms": u, "merged_ms": m, "speedup": u / m, "max_abs_diff": diffs[label],
                      "meta_edges": metas if label != "op" else 1}
    return out


def train_rows(arms: list[str], datasets: list[Path], epochs: float, size: int) -> dict[str, dict[str, Any]]:
    """Accuracy after the same epoch budget from the same random initialisation; arms alternate order."""
    out: dict[str, dict[str, Any]] = {a: {} for a in arms}
    for k, ds in enumerate(datasets):
        order = arms if k % 2 == 0 else arms[::-1]
        for arm in order:
            config = FinetuneConfig(backbone=arm, pretrained="none", input_size=size, optimizer="adam", lr=1e-3,
                                    batch_size=32, seed=0)
            r = finetune(config, ds, TrainOptions(epochs=epochs, save_checkpoint=False))
            out[arm][ds.stem] = {"accuracy": r.final_accuracy, "train_s": r.wall_time, "status": r.status}
            print(f"  trained {arm} on {ds.stem}: accuracy {r.final_accuracy:.3f} in {r.wall_time:.0f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collection", type=Path, required=True, help="demo collection (made if missing)")
    ap.add_argument("--datasets", default="shapes,textures", help="A (searched on) and B")
    ap.add_argument("--search-budget-s", type=float, default=90.0)
    ap.add_argument("--epochs", type=float, default=6.0)
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-nas"))
    args = ap.parse_args()
    torch.set_num_threads(1)  # latencies, searches and training on one thread (2 shared cores)
    if not args.collection.is_dir():
        subprocess.run([sys.executable, "-m", "metarec.cli", "datasets", "demo", "--out", str(args.collection)],
                       check=True)
    names = args.datasets.split(",")
    datasets = [args.collection / n if (args.collection / n).exists() else args.collection / f"{n}.npz"
                for n in names]
    os.environ["METAREC_NAS_DIR"] = str(args.out / "entries")
    args.out.mkdir(parents=True, exist_ok=True)
    space = SearchSpace(input_size=args.input_size)
    size = args.input_size

    t0 = time.perf_counter()
    table = measure_table(space, torch.device("cpu"))
    table_s = time.perf_counter() - t0
    mnv2 = latency_rows(["mobilenet_v2"], 2, size)["mobilenet_v2"]["backbone_b1_ms"]
    fastest = table.predict_ms(extract(space, torch.zeros(len(space.stem_ops)),
                                       torch.zeros(len(space.cells), len(space.edges), len(space.edge_ops)),
                                       table, 0.0))
    loose = 0.6 * mnv2  # the goal: at most 0.6x MobileNetV2's latency
    budgets = {"loose": loose, "tight": fastest + 0.3 * max(0.0, loose - fastest)}
    print(f"latency table: {len(table.entries)} entries in {table_s:.1f} s; MobileNetV2 backbone b1 {mnv2:.2f} ms; "
          f"fastest architecture {fastest:.2f} ms; budgets {budgets}", flush=True)
    searches: dict[str, dict[str, Any]] = {}
    for arm, kw in (("nolat", {"beta": 0.0}), ("loose", {"latency_budget_ms": budgets["loose"]}),
                    ("tight", {"latency_budget_ms": budgets["tight"]})):
        options = SearchOptions(budget_s=args.search_budget_s, space=space, **kw)  # type: ignore[arg-type]
        result = search(datasets[0], options, table=table)
        name = f"bench-{arm}"
        run = args.out / name
        run.mkdir(parents=True, exist_ok=True)
        write_entry(run, result, name)
        install_entry(run, name, overwrite=True)
        searches[arm] = {"name": "nas:" + name, "genotype": result.genotype, "stats": result.stats}
        print(f"search {arm}: {result.stats['steps']} steps, {result.stats['wall_s']:.0f} s, predicted "
              f"{result.stats['predicted_ms']:.2f} ms, genotype {result.genotype.to_dict()}", flush=True)

    arms = ["nas:bench-loose", "nas:bench-tight", "nas:bench-nolat", "mobilenet_v2"]
    n_classes = 5
    lat = latency_rows(arms, n_classes, size)
    # predicted vs measured under the same load: the table's modules and the backbones in the same rounds
    one = torch.zeros(1, 3, size, size)
    fresh = measure_table(space, torch.device("cpu"),
                          extra={a: (_model(s["name"], n_classes, size).backbone, one) for a, s in searches.items()})
    trained = train_rows(arms, datasets, args.epochs, size)
    genotypes = {"all-meta": Genotype.uniform(space, "meta_conv_7x7")}
    genotypes.update({a: s["genotype"] for a, s in searches.items()})
    merge = merge_rows(genotypes, space)
    pred = {a: {"search_table": searches[a]["stats"]["predicted_ms"],
                "fresh_table": fresh.predict_ms(searches[a]["genotype"]),
                "measured_with_fresh_table": fresh.stats["extra_ms"][a]} for a in searches}
    report = {"table_s": table_s, "budgets_ms": budgets, "fastest_ms": fastest, "mobilenet_v2_backbone_b1_ms": mnv2,
              "searches": {a: {"name": s["name"], "genotype": s["genotype"].to_dict(), **s["stats"]}
                           for a, s in searches.items()},
              "latency": lat, "training": trained, "merge": merge, "predicted_ms": pred,
              "device": table.device, "args": {k: str(v) for k, v in vars(args).items()}}
    (args.out / "bench_nas.json").write_text(json.dumps(report, indent=1))
    print_tables(report, arms, [d.stem for d in datasets])


def print_tables(r: dict[str, Any], arms: list[str], datasets: list[str]) -> None:
    """The tables of docs/nas.md."""
    lat, tr = r["latency"], r["training"]
    ref = lat["mobilenet_v2"]
    print(f"\ndevice: {r['device']}")
    print("| network | params (backbone) | MACs (M) | ms b1 | × MNv2 | ms b64 | × MNv2 | "
          + " | ".join(f"acc {d}" for d in datasets) + " |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(datasets))
    for a in arms:
        row = lat[a]
        accs = " | ".join(f"{tr[a][d]['accuracy']:.3f}" for d in datasets)
        print(f"| {a} | {row['params']:,} | {row['macs'] / 1e6:.2f} | {row['b1_ms']:.2f} | "
              f"{row['b1_ms'] / ref['b1_ms']:.2f} | {row['b64_ms']:.1f} | {row['b64_ms'] / ref['b64_ms']:.2f} | "
              f"{accs} |")
    print("\n| meta-kernels in | meta edges | unmerged ms | merged ms | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|")
    for label, m in r["merge"].items():
        print(f"| {label} | {m['meta_edges']} | {m['unmerged_ms']:.3f} | {m['merged_ms']:.3f} | "
              f"{m['speedup']:.2f} | {m['max_abs_diff']:.1e} |")
    print("\n| search | budget ms | predicted ms (search table) | measured ms (backbone b1) | measured / predicted "
          "| predicted ms (table re-measured) | measured ms (same rounds) | measured / predicted | steps (α steps) "
          "| wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for a, s in r["searches"].items():
        measured = lat[s["name"]]["backbone_b1_ms"]
        budget = r["budgets_ms"].get(a)
        p = r["predicted_ms"][a]
        fresh, same = p["fresh_table"], p["measured_with_fresh_table"]
        print(f"| {a} | {'-' if budget is None else f'{budget:.2f}'} | {s['predicted_ms']:.2f} | {measured:.2f} | "
              f"{measured / s['predicted_ms']:.2f} | {fresh:.2f} | {same:.2f} | {same / fresh:.2f} | "
              f"{s['steps']} ({s.get('arch_steps', s['steps'])}) | {s['wall_s']:.0f} |")


if __name__ == "__main__":
    main()
