"""``metarec eval {recommender,finetune,matchers}``: does the recommender beat the baselines? (issue 6)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metarec.commands._common import emit_json, note, show_progress
from metarec.commands.matchers import _int_list, add_eval_arguments
from metarec.commands.portfolio import PORTFOLIO_DIR_ENV, add_evidence_argument, open_portfolio

if TYPE_CHECKING:
    from metafeatures.fingerprint import Fingerprinter
    from portfolio.artifact import LoadedPortfolio

# portfolio.evaluation's defaults, repeated here because importing it loads torch on every CLI start
DEFAULT_BATCH_SIZES = (8, 64, 512)
DEFAULT_POLICIES = ("incumbent", "neighbors", "single_best", "reduced")
MAX_REPEATS = 10  # portfolio.eval_finetune.MAX_REPEATS
PORTFOLIO_HELP = f"portfolio directory (default: ${PORTFOLIO_DIR_ENV} or <repo>/portfolios/demo)"


def _names(text: str) -> list[str]:
    """Comma-separated names."""
    return [v.strip() for v in text.split(",") if v.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``eval`` command group."""
    p = sub.add_parser("eval", help="evaluate the recommender against baselines (leave-one-dataset-out, fine-tuning)")
    esub = p.add_subparsers(dest="eval_cmd", required=True, metavar="{recommender,finetune,matchers}")
    register_recommender(esub)
    register_finetune(esub)
    m = esub.add_parser("matchers", help="dataset-identification accuracy vs test batch size (= matchers eval)")
    add_eval_arguments(m)


def _common(p: argparse.ArgumentParser, out_dir: str) -> None:
    """Options every eval command shares."""
    p.add_argument("--portfolio", type=Path, default=None, help=PORTFOLIO_HELP)
    p.add_argument("--seed", type=int, default=0, help="fingerprint sampling and batch-drawing seed")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when present)")
    p.add_argument("--out-dir", type=Path, default=Path(out_dir), help="where the JSON, PNG and arguments go")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars or progress notes")


def register_recommender(esub: argparse._SubParsersAction) -> None:
    """Add ``eval recommender``."""
    r = esub.add_parser("recommender",
                        help="leave-one-dataset-out (or -group-out) regret of the policies, matchers and baselines")
    _common(r, "runs/eval-recommender")
    r.add_argument("--collection", type=Path, default=None,
                   help="directory holding the portfolio's datasets, fingerprinted when their fingerprints are "
                        "not cached (default: regenerate the demo datasets into the cache)")
    r.add_argument("--matchers", type=_names, default=None,
                   help="comma-separated matcher names (default: the matcher the portfolio recommends with, its "
                        "calibration's default_matcher; every refit costs a matcher fit per held-out set)")
    r.add_argument("--batch-sizes", type=_int_list, default=list(DEFAULT_BATCH_SIZES), help="test batch sizes")
    r.add_argument("--n-batches", type=int, default=20, help="random batches of the held-out dataset per size")
    r.add_argument("--n-samples", type=int, default=None,
                   help="fingerprints per known dataset (default: what the portfolio's provenance records, else 512)")
    r.add_argument("--no-cache", action="store_true", help="recompute fingerprints even if cached")
    r.add_argument("--policies", type=_names, default=list(DEFAULT_POLICIES),
                   help="comma-separated selection policies: incumbent, neighbors, single_best, reduced")
    r.add_argument("--time-budgets", type=_float_list, default=None,
                   help="comma-separated T (s) to score the ALC at (default: the portfolio's own T)")
    r.add_argument("--grouped", action=argparse.BooleanOptionalAction, default=None,
                   help="hold out every dataset of a held-out dataset's group (derivatives of one source) together "
                        "(default: yes when the portfolio has groups of several datasets; --no-grouped holds out "
                        "single datasets, which lets a dataset's siblings stay known)")
    r.set_defaults(func=cmd_recommender)


def _float_list(text: str) -> list[float]:
    """Comma-separated positive numbers."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not v > 0 or v > 7 * 24 * 3600 for v in values):
        raise argparse.ArgumentTypeError(f"time budgets must be in (0, 604800] seconds, got {text!r}")
    return values


def register_finetune(esub: argparse._SubParsersAction) -> None:
    """Add ``eval finetune``."""
    f = esub.add_parser("finetune", help="fine-tune held-out datasets with the recommendation and the baseline")
    _common(f, "runs/eval-finetune")
    f.add_argument("--collection", type=Path, required=True, help="directory of datasets; those the portfolio "
                                                                    "does not know are held out")
    f.add_argument("--budget-s", type=float, required=True, help="wall-clock budget of each fine-tuning run")
    f.add_argument("--datasets", type=_names, default=None, help="only these held-out datasets")
    f.add_argument("--matcher", default="mlp", help="which of the portfolio's matchers recommends")
    f.add_argument("--policy", choices=DEFAULT_POLICIES, default=None,
                   help="selection policy (default: the portfolio's calibrated one)")
    add_evidence_argument(f)
    f.add_argument("--n-samples", type=int, default=64, help="images fingerprinted per held-out dataset")
    f.add_argument("--alc-time-budget", type=float, default=1200.0, help="T of the ALC time axis (AutoDL: 1200)")
    f.add_argument("--t0", type=float, default=60.0, help="t0 of the ALC time axis (AutoDL: 60)")
    f.add_argument("--test-fraction", type=float, default=0.2, help="held-out share when a dataset has no test split")
    f.add_argument("--repeats", type=_repeats, default=1,
                   help=f"training seeds per arm (--seed, --seed + 1, ...; 1-{MAX_REPEATS}): the arms' mean ALCs "
                        "are compared, since one short run is noisy")
    f.set_defaults(func=cmd_finetune)


def _repeats(text: str) -> int:
    """``--repeats``: an integer in 1..MAX_REPEATS."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 1 <= value <= MAX_REPEATS:
        raise argparse.ArgumentTypeError(f"must be in 1..{MAX_REPEATS}, got {value}")
    return value


def _fingerprinter(loaded: LoadedPortfolio, args: argparse.Namespace) -> Fingerprinter:
    """A Fingerprinter rebuilding the portfolio's spec (its weights identity), checked against it."""
    from portfolio.fingerprinting import fingerprinter_for

    return fingerprinter_for(loaded, device=args.device)


def _write(out_dir: Path, name: str, payload: dict[str, Any], args: argparse.Namespace) -> Path:
    """Write the result JSON and the arguments into ``out_dir``; return the JSON's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (out_dir / "args.json").write_text(json.dumps(vars(args), indent=2, default=str) + "\n")
    return path


def cmd_recommender(args: argparse.Namespace) -> int:
    """Gather the known datasets' fingerprints, run the LODO evaluation, write JSON and PNG, report."""
    from tqdm import tqdm

    from metafeatures.errors import ConfigError
    from metafeatures.matchers.registry import matcher_class
    from portfolio.eval_data import portfolio_fingerprints
    from portfolio.evaluation import MIN_DATASETS, evaluate_recommender, plot_regret
    from portfolio.policies import check_policy

    started = time.perf_counter()
    if args.n_batches < 1 or (args.n_samples is not None and args.n_samples < 1):
        raise ConfigError("n_batches/n_samples", (args.n_batches, args.n_samples), "must be >= 1")
    for name in args.matchers or ():
        matcher_class(name)  # an unknown matcher fails before any fingerprinting
    for policy in args.policies:
        check_policy(policy)
    say = (lambda _m: None) if args.quiet else (lambda m: note(f"[{time.perf_counter() - started:6.1f} s] {m}"))
    loaded = open_portfolio(args.portfolio, how_to_pass="pass --portfolio DIR")
    if args.matchers is None:  # the portfolio's own recommending matcher: one refit per held-out set, not three
        main = loaded.selection.evaluation.get("default_matcher")
        args.matchers = [main] if main in loaded.matchers else sorted(loaded.matchers)
    if len(loaded.portfolio.datasets) < MIN_DATASETS:  # too small for leave-one-out: fail before fingerprinting
        raise ConfigError("datasets", len(loaded.portfolio.datasets),
                          f"leave-one-out needs a portfolio of at least {MIN_DATASETS} known datasets")
    if args.time_budgets and not loaded.performance.has_curves:
        raise ConfigError("time_budgets", args.time_budgets, f"portfolio {loaded.version} stores no learning curves, "
                          f"so it can only be scored at its own T = {loaded.performance.time_budget:g} s")
    if args.n_samples is None:
        args.n_samples = int(loaded.portfolio.provenance.get("fingerprint_sampling", {}).get("n_samples", 512))
    params = {m: loaded.matchers[m].get_params() for m in args.matchers if m in loaded.matchers}
    fps = portfolio_fingerprints(loaded, lambda: _fingerprinter(loaded, args), collection=args.collection,
                                 n_samples=args.n_samples, seed=args.seed, use_cache=not args.no_cache,
                                 progress=show_progress(args), say=say) if args.matchers else None
    groups = {e.dataset: str(e.summary.get("group") or e.dataset) for e in loaded.portfolio.entries}
    if args.grouped is None:  # derivatives of one source are held out together whenever there are any
        args.grouped = len(set(groups.values())) < len(groups)
    budgets: list[float | None] = list(args.time_budgets) if args.time_budgets else [None]
    kind = "group" if args.grouped else "dataset"
    results = {}
    cache: dict[str, Any] = {}  # the matchers' rankings, shared by every time budget
    n_fits = len(set(groups.values())) if args.grouped else len(loaded.portfolio.datasets)  # one per hidden set
    with tqdm(total=n_fits * len(args.matchers), desc="refit matchers",
              unit="fit", disable=not show_progress(args)) as bar:

        begun: list[str] = []

        def step(message: str) -> None:
            """Called before each refit: count the previous one as done and show what runs now."""
            bar.update(1 if begun else 0)
            begun.append(message)
            bar.set_postfix_str(message)

        for budget in budgets:
            results[budget] = evaluate_recommender(
                loaded.performance, {e.dataset: e.summary for e in loaded.portfolio.entries}, fps,
                matchers=args.matchers, params=params, batch_sizes=args.batch_sizes, n_batches=args.n_batches,
                seed=args.seed, policies=args.policies, candidates=loaded.candidates,
                reduced=loaded.portfolio.reduced_portfolio, groups=groups, grouped=args.grouped, time_budget=budget,
                novelty_threshold=loaded.selection.novelty.threshold if loaded.selection.novelty else None,
                on_progress=step if show_progress(args) else say, evidence_cache=cache)
        bar.update(bar.total - bar.n)
    result = results[budgets[0]]
    plot = plot_regret(result, args.out_dir / "regret.png",
                       f"leave-one-{kind}-out, portfolio {loaded.version} ({len(result.datasets)} datasets)")
    payload = {**result.to_json(), "portfolio": str(loaded.directory), "portfolio_version": loaded.version,
               "plot": str(plot), "seconds": round(time.perf_counter() - started, 1)}
    if len(budgets) > 1:
        payload["time_budgets"] = {f"{b:g}": results[b].to_json()["methods"] for b in budgets if b is not None}
    path = _write(args.out_dir, "eval_recommender.json", payload, args)
    if args.json:
        emit_json(payload)
        return 0
    for budget, res in results.items():
        t = res.settings["time_budget"]
        print(f"Leave-one-{kind}-out over {len(res.datasets)} datasets of portfolio {loaded.version}, ALC at "
              f"T = {t:g} s: normalized regret (0 = best allowed candidate, 1 = worst); matchers refitted without "
              f"the held-out {kind}, {args.n_batches} random batches per size; method = policy/matcher@batch size")
        print(res.table())
        print()
        if budget == budgets[0]:
            print("Regret per held-out dataset")
            print(res.per_dataset_table())
            print()
            if len(set(groups.values())) < len(groups):
                print("Mean regret per group (derivatives of one source)")
                print(res.per_group_table())
                print()
    note(f"wrote {path} and {plot} in {payload['seconds']} s")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    """Pick the held-out datasets, recommend for each and fine-tune both arms; write JSON and report."""
    from metafeatures.errors import ConfigError
    from portfolio import Recommender
    from portfolio.eval_data import heldout_datasets
    from portfolio.eval_finetune import compare_finetune

    started = time.perf_counter()
    if not args.budget_s > 0:
        raise ConfigError("budget_s", args.budget_s, "must be positive")
    loaded = open_portfolio(args.portfolio, how_to_pass="pass --portfolio DIR")
    recommender = Recommender(loaded, args.matcher)
    datasets = heldout_datasets(loaded, args.collection, args.datasets)
    say = (lambda _m: None) if args.quiet else (lambda m: note(f"[{time.perf_counter() - started:6.1f} s] {m}"))
    result = compare_finetune(recommender, _fingerprinter(loaded, args), datasets, args.budget_s, args.out_dir,
                              seed=args.seed, n_samples=args.n_samples, policy=args.policy,
                              time_budget=args.alc_time_budget, t0=args.t0, test_fraction=args.test_fraction,
                              device=args.device, evidence=args.evidence, repeats=args.repeats,
                              progress=show_progress(args), say=say)
    payload = {**result.to_json(), "portfolio": str(loaded.directory),
               "seconds": round(time.perf_counter() - started, 1)}
    path = _write(args.out_dir, "eval_finetune.json", payload, args)
    if args.json:
        emit_json(payload)
        return 0
    seeds = f"seed {args.seed}" if args.repeats == 1 else f"seeds {args.seed}-{args.seed + args.repeats - 1}"
    print(f"Held-out datasets fine-tuned for {args.budget_s:g} s each ({seeds}): the {args.matcher} "
          f"matcher's recommendation ({result.settings['policy']} policy, {args.evidence}) from portfolio "
          f"{loaded.version} vs the seed-000 baseline (mobilenet_v2, defaults); t1 = return time (first prediction)")
    print(result.table())
    note(f"wrote {path} in {payload['seconds']} s")
    return 0
