"""``metarec portfolio {show,update,room}`` and ``metarec recommend DATASET``: read, update, recommend."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metarec.commands._common import emit_json, note, show_progress
from metarec.commands.portfolio_figures import figure_listing, figure_paths

if TYPE_CHECKING:
    from portfolio.artifact import LoadedPortfolio

REBUILD_HINT = "build one with `metarec rebuild --collection DIR --out DIR`"
PORTFOLIO_DIR_ENV = "METAREC_PORTFOLIO_DIR"  # portfolio.defaults reads it; spelled here so --help stays torch-free
POLICY_CHOICES = ("incumbent", "neighbors", "single_best", "reduced")  # portfolio.policies.POLICIES, torch-free


def add_evidence_argument(p: argparse.ArgumentParser) -> None:
    """``--evidence``: what ranks the known datasets (one definition for recommend and eval finetune)."""
    p.add_argument("--evidence", choices=("fingerprints", "metafeatures"), default="fingerprints",
                   help="what ranks the known datasets: the matcher on the fingerprints, or the dataset's "
                        "meta-features (classes, images, resolution, channels; docs/evaluation.md)")


def default_portfolio_dir() -> Path:
    """``$METAREC_PORTFOLIO_DIR`` or the shipped demo portfolio (see :mod:`portfolio.defaults`)."""
    from portfolio.defaults import default_portfolio_dir as _default

    return _default()


def open_portfolio(directory: Path | None, how_to_pass: str = "pass a directory") -> LoadedPortfolio:
    """Load and check the portfolio in ``directory`` (default: :func:`default_portfolio_dir`).

    A missing directory (or one without ``portfolio.json``) is an ArtifactError that says how to build one.
    """
    from metafeatures.errors import ArtifactError
    from portfolio.artifact import PORTFOLIO_FILE, load_portfolio

    where = directory if directory is not None else default_portfolio_dir()
    origin = "" if directory is not None else (
        f" (the default portfolio; set {PORTFOLIO_DIR_ENV} or {how_to_pass} to use another)")
    if not where.is_dir():
        raise ArtifactError(f"no portfolio at {where}{origin}: no such directory; {REBUILD_HINT}")
    if not (where / PORTFOLIO_FILE).is_file():
        raise ArtifactError(f"no portfolio at {where}{origin}: it has no {PORTFOLIO_FILE}; {REBUILD_HINT}")
    return load_portfolio(where)


# ------------------------------------------------------------------------------------------ register


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``portfolio`` command group and the ``recommend`` command."""
    register_portfolio(sub)
    register_recommend(sub)


def register_portfolio(sub: argparse._SubParsersAction) -> None:
    """Add ``portfolio show`` and ``portfolio update``."""
    p = sub.add_parser("portfolio", help="inspect or update a portfolio artifact")
    psub = p.add_subparsers(dest="portfolio_cmd", required=True, metavar="{show,update,room}")
    s = psub.add_parser("show", help="print a portfolio's entries, reduced portfolio and curve")
    s.add_argument("directory", type=Path, nargs="?", default=None,
                   help=f"portfolio directory (default: ${PORTFOLIO_DIR_ENV} or <repo>/portfolios/demo)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_show)
    u = psub.add_parser("update", help="a new portfolio version from an existing one: every candidate (incumbents + "
                                       "the seed-000 default) on every known dataset with learning curves, matchers "
                                       "refitted, selection recalibrated; resumable")
    u.add_argument("directory", type=Path, nargs="?", default=None,
                   help=f"source portfolio (default: ${PORTFOLIO_DIR_ENV} or <repo>/portfolios/demo)")
    u.add_argument("--out", type=Path, required=True, help="where the new portfolio goes (may be the source)")
    u.add_argument("--collection", type=Path, default=None,
                   help="directory holding the known datasets (default: regenerate the demo datasets)")
    u.add_argument("--work-dir", type=Path, default=None, help="where finished cells are kept (default: beside --out)")
    u.add_argument("--no-default", action="store_true", help="do not add the seed-000 default candidate")
    u.add_argument("--add", action="append", default=[], metavar="[NAME=]PATH",
                   help="a dataset to add as a known dataset (repeatable; NAME defaults to the folder or file name): "
                        "the candidate pool is evaluated on it through the store, its entry is the best candidate")
    u.add_argument("--store", type=Path, default=None,
                   help="observation store cells are read from and written to (default OUT.observations.sqlite); "
                        "the source's own store is copied into it first")
    u.add_argument("--json", action="store_true", help="print JSON")
    u.add_argument("--quiet", action="store_true", help="no progress notes")
    u.set_defaults(func=cmd_update)
    r = psub.add_parser("room", help="does the performance matrix leave room for selection? mean ALC gap oracle - "
                                     "single best and the single best's normalised regret, from a portfolio or from "
                                     "the observation store of a build still running (complete columns only)")
    r.add_argument("directory", type=Path, nargs="?", default=None,
                   help=f"portfolio directory (default: ${PORTFOLIO_DIR_ENV} or <repo>/portfolios/demo)")
    r.add_argument("--store", type=Path, default=None, help="read an observation store instead of a portfolio")
    r.add_argument("--budget", type=float, default=None, help="the cells' budget in the store (default: the largest)")
    r.add_argument("--source", choices=("matrix", "bohb", "candidate", "job"), default="matrix",
                   help="which rows of the store make the matrix")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(func=cmd_room)


def register_recommend(sub: argparse._SubParsersAction) -> None:
    """Add ``recommend``."""
    p = sub.add_parser("recommend", help="recommend a fine-tuning configuration for a dataset from a portfolio")
    p.add_argument("dataset", type=Path, help="image folder, folder with manifest.csv, .csv or .npz")
    p.add_argument("--portfolio", type=Path, default=None,
                   help=f"portfolio directory (default: ${PORTFOLIO_DIR_ENV} or <repo>/portfolios/demo)")
    p.add_argument("--matcher", default="mlp", help="which of the portfolio's matchers ranks the known datasets")
    p.add_argument("--top-k", type=int, default=5, help="how many nearest known datasets to report")
    p.add_argument("--reduced", action="store_true", help="the same as --policy reduced")
    p.add_argument("--policy", choices=POLICY_CHOICES, default=None,
                   help="selection policy (default: the portfolio's calibrated one)")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="rank candidates by ALC at this T (default: the portfolio's own T)")
    add_evidence_argument(p)
    p.add_argument("--max-params", type=int, default=None, help="drop candidates with more parameters")
    p.add_argument("--max-flops", type=int, default=None, help="drop candidates with more FLOPs per image")
    p.add_argument("--max-latency-ms", type=float, default=None,
                   help="drop candidates slower than this per image (on the device the portfolio measured)")
    p.add_argument("--n-samples", type=int, default=64, help="images sampled and fingerprinted")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--weights", default=None,
                   help="PATH to the state dict the portfolio's fingerprints were made with (needed when its "
                        "spec names a weights file; its sha256 must match)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when present)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--no-cache", action="store_true", help="recompute fingerprints even if cached")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_recommend)


# ------------------------------------------------------------------------------------------ show


def cmd_show(args: argparse.Namespace) -> int:
    """Print the portfolio as JSON or as a short table."""
    loaded = open_portfolio(args.directory)
    p = loaded.portfolio
    if args.json:
        datasets = [{"name": e.dataset, "group": e.summary.get("group") or e.dataset,
                     "derivation": e.summary.get("derivation"), "n_classes": e.summary.get("n_classes"),
                     "n_items": e.summary.get("n_items"), "modality": e.summary.get("modality", "image")}
                    for e in p.entries]
        emit_json({"directory": str(loaded.directory), **p.model_dump(mode="json"), "datasets": datasets,
                   "figures": figure_paths(loaded.directory)})
        return 0
    spec = p.fingerprint_spec
    print(f"portfolio {p.version} ({loaded.directory})")
    print(f"fingerprints: {spec['backbone']}, {spec['weights']}, {spec['resolution']} px; "
          f"matchers: {', '.join(sorted(p.matchers))}; created {p.provenance.get('created_at')}")
    rows = [(e.dataset, str(e.configuration.get("backbone")), str(e.configuration.get("pretrained")),
             f"{e.score:.4f}", f"{e.budget:g} {e.budget_kind}") for e in p.entries]
    print(_table(("dataset", "backbone", "pretrained", "score", "budget"), rows))
    print(f"reduced portfolio ({len(p.reduced_portfolio)}): {', '.join(p.reduced_portfolio)}")
    curve = [(str(s.size), s.added, f"{s.score:.4f}", f"{s.min:.4f}", f"{s.mean:.4f}") for s in p.curve()]
    print(_table(("size", "added", "score", "min", "mean"), curve))
    print(f"candidates ({len(p.candidates)}):")
    print(_table(("id", "source", "backbone", "pretrained", "strategy", "params", "latency ms"),
                 [(c.id, c.source, str(c.configuration.get("backbone")), str(c.configuration.get("pretrained")),
                   str(c.configuration.get("strategy")), f"{c.cost.params:,}" if c.cost else "-",
                   f"{c.cost.latency_ms:g}" if c.cost else "-") for c in p.candidates]))
    sel = loaded.selection
    print(f"selection: default policy {sel.default_policy} ({sel.reason})")
    if sel.novelty is not None:
        print(f"novelty: fallback to the single best above {sel.novelty.threshold}")
    print(figure_listing(loaded.directory))
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    """Re-assemble a portfolio (cells with curves, matchers, calibration) into --out."""
    from offline_search.update import update_portfolio
    from portfolio.artifact import load_portfolio

    start = time.perf_counter()
    source = args.directory if args.directory is not None else default_portfolio_dir()
    say = (lambda _m: None) if args.quiet else (lambda m: note(f"[{time.perf_counter() - start:6.1f} s] {m}"))
    path = update_portfolio(source, args.out, collection=args.collection, work_dir=args.work_dir,
                            include_default=not args.no_default, on_progress=say, progress=show_progress(args),
                            added=_added_args(args.add), store=args.store)
    loaded = load_portfolio(path)
    payload = {"directory": str(path), "version": loaded.version, "updated_from": loaded.portfolio.provenance.get(
        "updated_from"), "added_datasets": sorted(loaded.portfolio.provenance.get("added_datasets", {})),
        "candidates": len(loaded.candidates), "datasets": len(loaded.portfolio.datasets),
        "default_policy": loaded.selection.default_policy, "seconds": round(time.perf_counter() - start, 1)}
    if args.json:
        emit_json(payload)
    else:
        print(f"portfolio {loaded.version} written to {path} ({payload['candidates']} candidates × "
              f"{payload['datasets']} datasets; default policy {loaded.selection.default_policy})")
    return 0


def _added_args(values: Sequence[str]) -> dict[str, Path]:
    """``--add [NAME=]PATH`` values → {name: path}; a repeated name is an error."""
    from metafeatures.errors import ConfigError

    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or "/" in name or not name:
            name, path = Path(value).stem, value
        if name in out:
            raise ConfigError("--add", value, f"names the dataset {name!r} twice")
        out[name] = Path(path)
    return out


def cmd_room(args: argparse.Namespace) -> int:
    """Print the room a matrix leaves for selection (portfolio/room.py)."""
    from portfolio.performance import DEFAULT_T0, DEFAULT_TIME_BUDGET
    from portfolio.room import matrix_room, store_room
    from portfolio.store import ObservationStore

    if args.store is not None:
        if not args.store.is_file():
            raise _config_error("store", str(args.store), "is not a file")
        store = ObservationStore(args.store)
        rows = [o for o in store.observations(source=args.source) if o.status == "ok" or o.alc is not None]
        kinds = {o.budget_kind for o in rows}
        budget = args.budget if args.budget is not None else max((o.budget for o in rows), default=0.0)
        if not rows or len(kinds) != 1:
            raise _config_error("store", str(args.store), f"holds no single-kind {args.source} rows to read")
        room = store_room(store, budget, kinds.pop(), DEFAULT_TIME_BUDGET, DEFAULT_T0, source=args.source)
        where = f"{args.store} ({args.source} rows, budget {budget:g})"
    else:
        loaded = open_portfolio(args.directory)
        m = loaded.portfolio.matrix()
        room = matrix_room(m.filled(), list(m.configs), list(m.datasets))
        where = f"portfolio {loaded.version}"
    data = room.to_dict()
    if args.json:
        emit_json({"source": where, **data})
        return 0
    goals = data["goals"]
    print(f"{where}: {room.n_candidates} candidates × {room.n_datasets} complete datasets "
          f"({room.n_incomplete} incomplete)")
    print(f"oracle mean ALC {data['oracle_mean']:.4f}, single best ({room.single_best}) {data['single_best_mean']:.4f}")
    print(f"gap {data['gap']:.4f} (goal >= {goals['gap']}), single best's normalised regret "
          f"{data['single_best_regret']:.4f} (goal >= {goals['single_best_regret']}): "
          + ("room enough" if goals["met"] else "NOT enough room"))
    print("best on: " + ", ".join(f"{c} {n}" for c, n in data["wins"].items()))
    return 0


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned plain-text columns."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ recommend


def cmd_recommend(args: argparse.Namespace) -> int:
    """Load the portfolio, fingerprint the dataset under the portfolio's spec, rank candidates and recommend."""
    from metafeatures.datasets import open_dataset
    from portfolio import Recommender, recommend_dataset
    from portfolio.fingerprinting import fingerprinter_for
    from portfolio.recommender import parse_request

    start = time.perf_counter()
    if args.n_samples < 1:
        raise _config_error("n_samples", args.n_samples, "must be >= 1")
    request = parse_request({"policy": args.policy, "time_budget_s": args.time_budget, "top_k": args.top_k,
                             "max_params": args.max_params, "max_flops": args.max_flops,
                             "max_latency_ms": args.max_latency_ms, "reduced": args.reduced,
                             "evidence": args.evidence})
    loaded = open_portfolio(args.portfolio, how_to_pass="pass --portfolio DIR")
    recommender = Recommender(loaded, args.matcher)  # unknown matcher: ConfigError listing the available ones
    ds = open_dataset(args.dataset)
    spec = loaded.fingerprint_spec
    fingerprinter = fingerprinter_for(loaded, args.weights, batch_size=args.batch_size, device=args.device,
                                      threads=args.threads)
    rec, n_fp = recommend_dataset(recommender, fingerprinter, ds, request, n_samples=args.n_samples, seed=args.seed,
                                  use_cache=not args.no_cache, progress=show_progress(args))
    elapsed_ms = (time.perf_counter() - start) * 1000.0
    payload: dict[str, Any] = {
        **rec.model_dump(mode="json"),
        "dataset": ds.name,
        "n_fingerprints": n_fp,
        "portfolio": str(loaded.directory),
        "elapsed_ms": round(elapsed_ms, 1),
    }
    if args.json:
        emit_json(payload)
        return 0
    print_recommendation(ds.name, rec)
    note(f"{n_fp} fingerprints ({spec.backbone}, {spec.weights}, {spec.resolution} px) in {elapsed_ms:.0f} ms")
    return 0


#: what the ``rank`` column of a recommendation is under each policy (``RankedCandidate.rank_score``)
RANK_MEANING = {"neighbors": "the neighbours' normalised ALC, 1 = best there",
                "reduced": "the neighbours' normalised ALC, 1 = best there",
                "single_best": "mean ALC over the known datasets",
                "incumbent": "match score of the neighbour whose incumbent it is"}


def print_recommendation(name: str, rec: Any) -> None:
    """The recommendation as a few lines and two tables (candidates, neighbours)."""
    novelty = "uncalibrated" if rec.novelty is None else f"{rec.novelty:.2f}"
    by = "meta-features" if rec.evidence == "metafeatures" else f"matcher {rec.matcher}"
    print(f"{name}: most like {rec.best_match!r} ({rec.neighbors[0].score:.3f}) by {by} of "
          f"portfolio {rec.portfolio_version}; novelty {novelty}")
    if rec.fallback.used:
        print(f"fallback: {rec.fallback.reason}")
    print(f"policy {rec.policy}, candidates ranked at T = {rec.time_budget_s:g} s (rank: {RANK_MEANING[rec.policy]})"
          + (f", limits {rec.limits}" if rec.limits else "") + ":")
    rows = [(c.id, c.source, str(c.configuration.get("backbone")), str(c.configuration.get("pretrained")),
             str(c.configuration.get("strategy")), f"{c.rank_score:.3f}",
             f"{c.predicted_score:.3f}" + ("*" if c.extrapolated else ""),
             f"{c.cost.params:,}" if c.cost else "-", f"{c.cost.latency_ms:g}" if c.cost else "-")
            for c in rec.candidates]
    print(_table(("candidate", "source", "backbone", "pretrained", "strategy", "rank", "pred. ALC", "params",
                  "ms/img"),
                 rows))
    if any(c.extrapolated for c in rec.candidates):
        print("* extrapolated: the budget is longer than the stored runs (their last score is held)")
    print(f"recommended configuration (candidate {rec.candidates[0].id!r}):")
    for key, value in rec.configuration.items():
        print(f"  {key}: {value}")
    print(_table(("neighbour", "score", "distance"),
                 [(n.dataset, f"{n.score:.3f}", f"{n.distance:.3f}") for n in rec.neighbors]))


def _config_error(field: str, value: object, problem: str) -> Exception:
    """A ConfigError (imported lazily, like everything heavy here)."""
    from metafeatures.errors import ConfigError

    return ConfigError(field, value, problem)
