"""The offline rebuild: BOHB per dataset → incumbents → performance matrix → matchers → portfolio directory.

Every expensive step is recorded under a work directory named by the scenario, so a killed rebuild
resumes: finished BOHB iterations are not run again and finished matrix cells are read back.
"""

from __future__ import annotations

import json
import math
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finetune.config import FinetuneConfig
from finetune.space import build_search_space
from metafeatures.datasets import Dataset, open_collection
from metafeatures.errors import MetarecError
from metafeatures.evaluation import evaluate_matchers, plot_accuracy
from metafeatures.fingerprint import Fingerprinter, Fingerprints
from metafeatures.matchers import get_matcher
from metafeatures.summary import DatasetSummary, summarize
from offline_search.hpb import Trial, run_bohb
from offline_search.matcher_hpo import OBJECTIVE as MATCHER_OBJECTIVE
from offline_search.matcher_hpo import matcher_space, save_fingerprint_table
from offline_search.objective import finetune_objective
from offline_search.scenario import SearchScenario
from portfolio.artifact import PortfolioEntry, build_portfolio, save_portfolio
from portfolio.calibration import calibrate
from portfolio.candidates import Candidate, default_candidate, with_costs
from portfolio.performance import DEFAULT_T0, DEFAULT_TIME_BUDGET, CellCurve, PerformanceData, matrix_from_curves

OBJECTIVE = "offline_search.objective:finetune_objective"
Progress = Callable[[str], None]


@dataclass
class RebuildOptions:
    """What to rebuild from and how: the collection, the scenario, workers, fingerprints, matchers."""

    collection: Path
    out: Path
    scenario: SearchScenario = field(default_factory=SearchScenario)
    work_dir: Path | None = None
    n_workers: int = 2
    nameserver_host: str = "127.0.0.1"
    nameserver_port: int = 0
    resume: bool = False
    overwrite: bool = False
    fingerprint_backbone: str = "mobilenet_v2"
    fingerprint_weights: str = "imagenet"
    fingerprint_resolution: int = 64
    n_samples: int = 512
    matchers: tuple[str, ...] = ("kmeans", "mlp", "moments")
    datasets: tuple[str, ...] | None = None
    matcher_hpo_iterations: int = 0
    matcher_test_batch_size: int = 64
    matcher_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    include_default: bool = True
    base_config: dict[str, Any] = field(default_factory=dict)
    on_progress: Progress | None = None

    def work(self) -> Path:
        """Where run logs, matrix cells and fingerprints live: beside the output, named by the scenario."""
        root = self.work_dir or self.out.parent / f".{self.out.name}.work"
        return self.scenario.run_dir(root)


def incumbent(trials: list[Trial]) -> Trial:
    """The best trial at the largest budget that has a finite loss (BOHB's incumbent)."""
    finite = [t for t in trials if t.loss is not None and math.isfinite(t.loss) and "error" not in t.info]
    if not finite:
        raise MetarecError("every BOHB evaluation failed; see the run log for the reasons")
    top = max(t.budget for t in finite)
    return min((t for t in finite if t.budget == top), key=lambda t: t.loss)  # type: ignore[arg-type,return-value]


def dataset_seed(seed: int, name: str) -> int:
    """A per-dataset BOHB seed: with one seed for all, every dataset would start from the same samples."""
    return (seed + zlib.crc32(name.encode())) % (2**31)


def search_dataset(name: str, ds: Dataset, opts: RebuildOptions) -> Trial:
    """``scenario.n_runs`` BOHB runs on one dataset; the best incumbent over the runs."""
    sc = opts.scenario
    space = build_search_space(sc.backbones, sc.pretrained, seed=sc.seed, modality=ds.modality)
    best: list[Trial] = []
    for k in range(sc.n_runs):
        trials = run_bohb(space, OBJECTIVE, opts.work() / name / f"bohb-{k}", f"{name}-{sc.key()}-{k}",
                          min_budget=sc.min_budget, max_budget=sc.max_budget, n_iterations=sc.n_iterations,
                          eta=sc.eta, n_workers=opts.n_workers, host=opts.nameserver_host,
                          port=opts.nameserver_port, seed=dataset_seed(sc.seed, name) + k, resume=opts.resume,
                          objective_kwargs=_objective_kwargs(ds, opts))
        best.append(incumbent(trials))
    return min(best, key=lambda t: t.loss)  # type: ignore[arg-type,return-value]


def _objective_kwargs(ds: Dataset, opts: RebuildOptions) -> dict[str, Any]:
    """Arguments of the fine-tune objective for one dataset."""
    return {"dataset": str(ds.root), "budget_kind": opts.scenario.budget_kind, "score": opts.scenario.score,
            "base": {"seed": opts.scenario.seed, **opts.base_config}, "time_budget": DEFAULT_TIME_BUDGET,
            "t0": DEFAULT_T0}


def performance_data(candidates: dict[str, dict[str, Any]], datasets: dict[str, Dataset],
                     opts: RebuildOptions) -> PerformanceData:
    """Every candidate evaluated on every dataset at the maximum budget, with its learning curve.

    Cells are cached in ``matrix_cells.json`` as they finish, so a killed run resumes where it stopped; a
    failed run is stored as ``null`` (NaN in the matrix). Scores are the curves' ALC at the scenario's T.
    """
    cells_path = opts.work() / "matrix_cells.json"
    cells: dict[str, Any] = json.loads(cells_path.read_text()) if cells_path.is_file() else {}
    curves: dict[tuple[str, str], CellCurve | None] = {}
    todo = [(c, d) for c in candidates for d in sorted(datasets)]
    for n, (source, target) in enumerate(todo, 1):
        key = f"{source}->{target}"
        if key not in cells or not isinstance(cells[key], (dict, type(None))):  # absent, or a score without curve
            _say(opts, f"cell {n}/{len(todo)}: candidate {source} on {target}")
            out = finetune_objective(candidates[source], opts.scenario.max_budget,
                                     **_objective_kwargs(datasets[target], opts))
            info = out["info"]
            cells[key] = None if "error" in info else {"curve": info["curve"], "budget_s": info["budget_s"]}
            cells_path.write_text(json.dumps(cells, indent=1, sort_keys=True))
        cell = cells[key]
        curves[(source, target)] = None if cell is None else CellCurve(
            t=tuple(t for t, _ in cell["curve"]), nauc=tuple(v for _, v in cell["curve"]),
            budget_s=float(cell["budget_s"]))
    return matrix_from_curves(list(candidates), sorted(datasets), curves, time_budget=DEFAULT_TIME_BUDGET,
                              t0=DEFAULT_T0)


def fit_matchers(fingerprints: dict[str, Fingerprints], opts: RebuildOptions) -> dict[str, Any]:
    """Fit each matcher on all known datasets' fingerprints (labels = dataset names), with hyperparameters
    tuned by BOHB on held-out identification accuracy when ``matcher_hpo_iterations`` > 0."""
    x = np.concatenate([fp.features for fp in fingerprints.values()])
    y = np.concatenate([[name] * len(fp.features) for name, fp in fingerprints.items()])
    params: dict[str, dict[str, Any]] = {k: dict(v) for k, v in opts.matcher_params.items()}
    if opts.matcher_hpo_iterations > 0:
        work = opts.work() / "matchers"
        table = save_fingerprint_table(work / "fingerprints.npz", x, y)
        for name in opts.matchers:
            _say(opts, f"BOHB on the {name} matcher's hyperparameters")
            trials = run_bohb(matcher_space(name, opts.scenario.seed), MATCHER_OBJECTIVE, work / name,
                              f"matcher-{name}-{opts.scenario.key()}", min_budget=0.25, max_budget=1.0,
                              n_iterations=opts.matcher_hpo_iterations, eta=2, n_workers=opts.n_workers,
                              host=opts.nameserver_host, port=opts.nameserver_port, seed=opts.scenario.seed,
                              resume=opts.resume,
                              objective_kwargs={"table": str(table), "matcher": name, "seed": opts.scenario.seed,
                                                "test_batch_size": opts.matcher_test_batch_size})
            params[name] = incumbent(trials).config
    return {name: get_matcher(name, **params.get(name, {})).fit(x, y) for name in opts.matchers}


BATCH_SIZES = (1, 8, 32, 64, 128, 256, 512)
BATCH_CURVE_FIGURE = "batch_size_curve.png"


def batch_size_curve(fps: dict[str, Fingerprints], opts: RebuildOptions, matchers: dict[str, Any],
                     directory: Path) -> Path:
    """Seed 001 Fig. 5 for this portfolio: identification accuracy of each matcher against the test batch
    size (fit on half of each dataset's fingerprints, held-out batches), saved beside portfolio.json."""
    params = {name: m.get_params() for name, m in matchers.items()}  # the portfolio's (tuned) hyperparameters
    result = evaluate_matchers(fps, BATCH_SIZES, matchers=opts.matchers, seed=opts.scenario.seed, params=params)
    (directory / "batch_size_curve.json").write_text(json.dumps(result.to_json()["matchers"], indent=1))
    return plot_accuracy(result, directory / BATCH_CURVE_FIGURE)


def rebuild(opts: RebuildOptions) -> Path:
    """Run the whole offline job and write the portfolio directory ``opts.out``."""
    datasets = open_collection(opts.collection)
    if opts.datasets:
        missing = sorted(set(opts.datasets) - set(datasets))
        if missing:
            raise MetarecError(f"{opts.collection} has no dataset(s) {missing}; it has {sorted(datasets)}")
        datasets = {n: datasets[n] for n in opts.datasets}
    if opts.overwrite and opts.work().exists():
        shutil.rmtree(opts.work())
    opts.work().mkdir(parents=True, exist_ok=True)
    opts.scenario.save(opts.work())
    summaries: dict[str, DatasetSummary] = {}
    incumbents: dict[str, dict[str, Any]] = {}
    scores: dict[str, float] = {}
    for name, ds in datasets.items():
        summaries[name] = summarize(ds)
        unit = "clips" if summaries[name].modality == "video" else "images"
        _say(opts, f"BOHB on {name} ({summaries[name].n_items} {unit})")
        best = search_dataset(name, ds, opts)
        incumbents[name] = best.config
        scores[name] = -float(best.loss)  # type: ignore[arg-type]
    base = {"seed": opts.scenario.seed, **opts.base_config}
    entries = [PortfolioEntry.from_objects(summaries[n], FinetuneConfig.from_configspace(incumbents[n], base=base),
                                           scores[n], opts.scenario.max_budget, opts.scenario.budget_kind)
               for n in sorted(datasets)]
    return assemble(entries, datasets, opts)


def candidate_pool(entries: list[PortfolioEntry], include_default: bool = True, seed: int = 0) -> list[Candidate]:
    """The candidates every dataset is evaluated with: each entry's incumbent, plus the seed-000 default."""
    from portfolio.candidates import incumbent_candidates

    pool = incumbent_candidates(entries)
    default = default_candidate(seed)
    if include_default and all(c.configuration != default.configuration for c in pool):
        pool.append(default)
    return pool


def assemble(entries: list[PortfolioEntry], datasets: dict[str, Dataset], opts: RebuildOptions,
             pool: list[Candidate] | None = None, extra_provenance: dict[str, Any] | None = None) -> Path:
    """Known datasets with their incumbents → every candidate on every dataset (curves) → fingerprints →
    matchers → selection calibration → the saved portfolio directory (shared by rebuild and update)."""
    pool = pool if pool is not None else candidate_pool(entries, opts.include_default, opts.scenario.seed)
    data = performance_data({c.id: c.configuration for c in pool}, datasets, opts)
    _say(opts, "fingerprints and matchers")
    fpr = Fingerprinter(opts.fingerprint_backbone, opts.fingerprint_weights, resolution=opts.fingerprint_resolution,
                        seed=opts.scenario.seed)
    fps = {e.dataset: fpr.fingerprint(datasets[e.dataset], e.summary["content_hash"], n_samples=opts.n_samples,
                                      seed=opts.scenario.seed) for e in entries}
    matchers = fit_matchers(fps, opts)
    _say(opts, "candidate costs and the selection calibration (inner leave-one-out)")
    pool = with_costs(pool)
    reduced = build_portfolio(entries=entries, matrix=data.matrix, fingerprint_spec=fpr.spec,
                              config_space=_space(opts, datasets), matcher_names=opts.matchers, candidates=pool,
                              performance=data).reduced_portfolio
    selection = calibrate(data, pool, {n: f.features for n, f in fps.items()}, matchers, reduced,
                          seed=opts.scenario.seed)
    portfolio = build_portfolio(entries=entries, matrix=data.matrix, fingerprint_spec=fpr.spec,
                                config_space=_space(opts, datasets), matcher_names=opts.matchers,
                                scenario=opts.scenario.to_dict(), candidates=pool, performance=data,
                                selection=selection, extra_provenance=extra_provenance,
                                fingerprint_sampling={"n_samples": opts.n_samples, "seed": opts.scenario.seed})
    path = save_portfolio(portfolio, opts.out, matchers, overwrite=opts.overwrite or opts.resume)
    _say(opts, "batch-size curve of the matchers")
    batch_size_curve(fps, opts, matchers, path)
    _say(opts, f"portfolio {portfolio.version} written to {path}")
    return path


def _space(opts: RebuildOptions, datasets: dict[str, Dataset]) -> Any:
    """The scenario's search space for the collection's modality."""
    return build_search_space(opts.scenario.backbones, opts.scenario.pretrained, modality=_modality(datasets))


def _modality(datasets: dict[str, Dataset]) -> str:
    """``video`` when any dataset is (the portfolio's space then holds the video head), else ``image``."""
    return "video" if any(ds.modality == "video" for ds in datasets.values()) else "image"


def _say(opts: RebuildOptions, message: str) -> None:
    """Report progress to the caller (the CLI prints it)."""
    if opts.on_progress is not None:
        opts.on_progress(message)
