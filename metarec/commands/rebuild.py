"""``metarec rebuild``: the offline BOHB job that builds a portfolio directory from a collection."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from metarec.commands._common import emit_json, note, show_progress


def _names(text: str) -> tuple[str, ...]:
    """Comma-separated names."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``rebuild`` command."""
    p = sub.add_parser("rebuild", help="offline BOHB search per dataset -> performance matrix -> portfolio")
    p.add_argument("--collection", type=Path, required=True, help="directory of known datasets")
    p.add_argument("--out", type=Path, required=True, help="portfolio directory to write")
    p.add_argument("--datasets", type=_names, default=None, help="only these datasets of the collection")
    p.add_argument("--scenario", type=Path, default=None, help="SearchScenario JSON (options below override it)")
    p.add_argument("--n-runs", type=int, default=None, help="BOHB runs per dataset")
    p.add_argument("--n-iterations", type=int, default=None, help="BOHB iterations per run")
    p.add_argument("--min-budget", type=float, default=None)
    p.add_argument("--max-budget", type=float, default=None)
    p.add_argument("--eta", type=float, default=None)
    p.add_argument("--budget-kind", choices=("epochs", "seconds"), default=None)
    p.add_argument("--score", choices=("alc", "final_nauc"), default=None)
    p.add_argument("--backbones", type=_names, default=None, help="backbones in the search space")
    p.add_argument("--pretrained", type=_names, default=None, help="pretrained sources in the search space")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--workers", type=int, default=2,
                   help="local BOHB worker processes; 0: only the master, remote workers join with "
                        "`metarec search worker --task WORK_DIR/<dataset>/bohb-K/worker.json`")
    p.add_argument("--nameserver-host", default="127.0.0.1", help="interface the nameserver listens on")
    p.add_argument("--nameserver-port", type=int, default=0, help="nameserver port (0: any free port)")
    p.add_argument("--fingerprint-backbone", default="mobilenet_v2")
    p.add_argument("--fingerprint-weights", default="imagenet")
    p.add_argument("--fingerprint-resolution", type=int, default=64)
    p.add_argument("--n-samples", type=int, default=512, help="fingerprinted images per dataset")
    p.add_argument("--matchers", type=_names, default=("kmeans", "mlp"), help="matchers to fit and ship")
    p.add_argument("--matcher-hpo-iterations", type=int, default=0,
                   help="BOHB iterations tuning each matcher's hyperparameters (0: defaults)")
    p.add_argument("--matcher-test-batch-size", type=int, default=64, help="test batch size the matchers are tuned for")
    p.add_argument("--base-config", type=Path, default=None, help="JSON of fixed FinetuneConfig fields")
    p.add_argument("--store", type=Path, default=None,
                   help="observation store (SQLite; default OUT.observations.sqlite beside the portfolio): every "
                        "fine-tune is a row, and a row already there is not trained again")
    p.add_argument("--sobol", type=int, default=0, help="space-filling (Sobol) candidates added to the pool")
    p.add_argument("--no-default-candidate", action="store_true",
                   help="leave seed 000's default (MobileNetV2, ImageNet, full fine-tuning) out of the pool")
    p.add_argument("--second-seed-fraction", type=float, default=0.1,
                   help="share of pool cells also run with seed + 1 (the noise is reported)")
    p.add_argument("--search-per-group", type=int, default=0,
                   help="BOHB only on the first K datasets of each group (0: every dataset); the others "
                        "take the pool's best candidate")
    p.add_argument("--ray", action="store_true",
                   help="run the BOHB searches and the matrix cells as Ray tasks on this machine (--workers of "
                        "them at once)")
    p.add_argument("--ray-address", default=None,
                   help="join a Ray cluster started with `ray start` (implies --ray); datasets must be at the same "
                        "path on every node, the store stays here")
    p.add_argument("--resume", action="store_true", help="continue an interrupted rebuild")
    p.add_argument("--overwrite", action="store_true", help="discard earlier work and start afresh")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rebuild)


def cmd_rebuild(args: argparse.Namespace) -> int:
    """Assemble the scenario and options, run the rebuild, report."""
    from offline_search.rebuild import RebuildOptions, rebuild
    from offline_search.scenario import SearchScenario
    from portfolio.artifact import load_portfolio

    data = SearchScenario.from_dict(json.loads(args.scenario.read_text())).to_dict() if args.scenario else {}
    fields = {"n_runs": args.n_runs, "n_iterations": args.n_iterations, "min_budget": args.min_budget,
              "max_budget": args.max_budget, "eta": args.eta, "budget_kind": args.budget_kind, "score": args.score,
              "backbones": args.backbones, "pretrained": args.pretrained, "seed": args.seed}
    overrides = {k: v for k, v in fields.items() if v is not None}
    scenario = SearchScenario.from_dict({**SearchScenario().to_dict(), **data, **overrides})
    started = time.perf_counter()
    opts = RebuildOptions(collection=args.collection, out=args.out, scenario=scenario, n_workers=args.workers,
                          nameserver_host=args.nameserver_host, nameserver_port=args.nameserver_port,
                          resume=args.resume, overwrite=args.overwrite, datasets=args.datasets,
                          fingerprint_backbone=args.fingerprint_backbone,
                          fingerprint_weights=args.fingerprint_weights,
                          fingerprint_resolution=args.fingerprint_resolution, n_samples=args.n_samples,
                          matchers=args.matchers, matcher_hpo_iterations=args.matcher_hpo_iterations,
                          matcher_test_batch_size=args.matcher_test_batch_size,
                          base_config=json.loads(args.base_config.read_text()) if args.base_config else {},
                          store=args.store, n_sobol=args.sobol, include_default=not args.no_default_candidate,
                          second_seed_fraction=args.second_seed_fraction, search_per_group=args.search_per_group,
                          progress_bar=show_progress(args), ray=args.ray, ray_address=args.ray_address,
                          on_progress=lambda m: note(f"[{time.perf_counter() - started:7.1f} s] {m}"))
    path = rebuild(opts)
    loaded = load_portfolio(path)
    report = {"out": str(path), "version": loaded.version, "datasets": loaded.portfolio.datasets,
              "reduced_portfolio": loaded.portfolio.reduced_portfolio,
              "seconds": round(time.perf_counter() - started, 1),
              "work_dir": str(opts.work()), "store": str(opts.store_path()), "scenario": scenario.to_dict()}
    if args.json:
        emit_json(report)
    else:
        print(f"portfolio {loaded.version}: {len(loaded.portfolio.datasets)} datasets, reduced portfolio "
              f"{loaded.portfolio.reduced_portfolio}, in {report['seconds']} s -> {path}")
    return 0
