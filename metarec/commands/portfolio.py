"""``metarec portfolio show [DIR]`` and ``metarec recommend DATASET``: read a portfolio, recommend from it."""

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
    """Add ``portfolio show``."""
    p = sub.add_parser("portfolio", help="inspect a portfolio artifact")
    psub = p.add_subparsers(dest="portfolio_cmd", required=True, metavar="{show}")
    s = psub.add_parser("show", help="print a portfolio's entries, reduced portfolio and curve")
    s.add_argument("directory", type=Path, nargs="?", default=None,
                   help=f"portfolio directory (default: ${PORTFOLIO_DIR_ENV} or <repo>/portfolios/demo)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_show)


def register_recommend(sub: argparse._SubParsersAction) -> None:
    """Add ``recommend``."""
    p = sub.add_parser("recommend", help="recommend a fine-tuning configuration for a dataset from a portfolio")
    p.add_argument("dataset", type=Path, help="image folder, folder with manifest.csv, .csv or .npz")
    p.add_argument("--portfolio", type=Path, default=None,
                   help=f"portfolio directory (default: ${PORTFOLIO_DIR_ENV} or <repo>/portfolios/demo)")
    p.add_argument("--matcher", default="mlp", help="which of the portfolio's matchers ranks the known datasets")
    p.add_argument("--top-k", type=int, default=5, help="how many nearest known datasets to report")
    p.add_argument("--reduced", action="store_true",
                   help="recommend only configurations of the reduced portfolio")
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
        emit_json({"directory": str(loaded.directory), **p.model_dump(mode="json"),
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
    print(figure_listing(loaded.directory))
    return 0


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned plain-text columns."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ recommend


def cmd_recommend(args: argparse.Namespace) -> int:
    """Load the portfolio, fingerprint the dataset under the portfolio's spec, rank and recommend."""
    from metafeatures.datasets import open_dataset
    from metafeatures.summary import content_hash
    from portfolio import Recommender
    from portfolio.fingerprinting import fingerprinter_for

    start = time.perf_counter()
    if args.top_k < 1:
        raise _config_error("top_k", args.top_k, "must be >= 1")
    if args.n_samples < 1:
        raise _config_error("n_samples", args.n_samples, "must be >= 1")
    loaded = open_portfolio(args.portfolio, how_to_pass="pass --portfolio DIR")
    recommender = Recommender(loaded, args.matcher)  # unknown matcher: ConfigError listing the available ones
    ds = open_dataset(args.dataset)
    spec = loaded.fingerprint_spec
    fingerprinter = fingerprinter_for(loaded, args.weights, batch_size=args.batch_size, device=args.device,
                                      threads=args.threads)
    fp = fingerprinter.fingerprint(ds, content_hash(ds), n_samples=args.n_samples, seed=args.seed,
                                   use_cache=not args.no_cache, progress=show_progress(args))
    rec = recommender.recommend(fp.features, top_k=args.top_k, reduced=args.reduced)
    elapsed_ms = (time.perf_counter() - start) * 1000.0
    payload: dict[str, Any] = {
        **rec.model_dump(mode="json"),
        "dataset": ds.name,
        "n_fingerprints": int(len(fp.features)),
        "portfolio": str(loaded.directory),
        "elapsed_ms": round(elapsed_ms, 1),
    }
    if args.json:
        emit_json(payload)
        return 0
    print(f"{ds.name}: most like {rec.best_match!r} ({rec.neighbors[0].score:.3f}) "
          f"by matcher {rec.matcher} of portfolio {rec.portfolio_version}")
    source = (f"best reduced-portfolio configuration on {rec.best_match!r}: incumbent of {rec.incumbent_of!r}"
              if rec.restricted_to_reduced else f"incumbent of {rec.incumbent_of!r}")
    print(f"recommended configuration ({source}):")
    for key, value in rec.configuration.items():
        print(f"  {key}: {value}")
    print(_table(("neighbour", "score"), [(n.dataset, f"{n.score:.3f}") for n in rec.neighbors]))
    note(f"{len(fp.features)} fingerprints ({spec.backbone}, {spec.weights}, {spec.resolution} px) "
         f"in {elapsed_ms:.0f} ms")
    return 0


def _config_error(field: str, value: object, problem: str) -> Exception:
    """A ConfigError (imported lazily, like everything heavy here)."""
    from metafeatures.errors import ConfigError

    return ConfigError(field, value, problem)
