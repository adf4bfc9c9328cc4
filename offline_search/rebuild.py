"""The offline rebuild: BOHB per dataset → incumbents → performance matrix → matchers → portfolio directory.

Every expensive step is recorded, so a killed rebuild resumes: BOHB logs live under a work directory
named by the scenario (finished iterations are not run again), and every fine-tune (BOHB trial, matrix
cell) is a row of the observation store (``portfolio.store``), read back instead of trained again. The
candidate pool is the incumbents, seed 000's default and ``n_sobol`` Sobol points of the space; a share
of its cells also runs a second seed (the noise goes into the provenance). With ``search_per_group``
BOHB runs on only the first datasets of each group, and the others take the pool's best candidate.
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
from offline_search.hpb import DONE_NAME, Trial, bohb_cost, run_bohb, warm_workers
from offline_search.matcher_hpo import OBJECTIVE as MATCHER_OBJECTIVE
from offline_search.matcher_hpo import matcher_space, save_fingerprint_table
from offline_search.objective import finetune_objective
from offline_search.progress import RebuildProgress
from offline_search.scenario import SearchScenario
from portfolio.artifact import PortfolioEntry, build_portfolio, save_portfolio
from portfolio.calibration import calibrate
from portfolio.candidates import Candidate, default_candidate, with_costs
from portfolio.performance import (
    DEFAULT_T0,
    DEFAULT_TIME_BUDGET,
    CellCurve,
    PerformanceData,
    matrix_from_curves,
    mean_curve,
)
from portfolio.store import ObservationStore, seed_noise

OBJECTIVE = "offline_search.objective:finetune_objective"
LEGACY_CELLS = "matrix_cells.json"
Progress = Callable[[str], None]
Advance = Callable[[RebuildProgress], None]


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
    base_config: dict[str, Any] = field(default_factory=dict)
    on_progress: Progress | None = None
    include_default: bool = True
    store: Path | None = None
    n_sobol: int = 0
    second_seed_fraction: float = 0.0
    search_per_group: int = 0
    progress_bar: bool = False
    ray: bool = False
    ray_address: str | None = None
    on_advance: Advance | None = None  # called after each finished search and cell (a cancel may raise here)
    tracker: RebuildProgress = field(default_factory=RebuildProgress)

    def __post_init__(self) -> None:
        from metafeatures.errors import ConfigError

        checks = [("n_sobol", 0 <= self.n_sobol <= 4096, "must be between 0 and 4096"),
                  ("second_seed_fraction", 0.0 <= self.second_seed_fraction <= 1.0, "must be between 0 and 1"),
                  ("search_per_group", 0 <= self.search_per_group <= 1000, "must be between 0 and 1000")]
        for name, ok, problem in checks:
            if not ok:
                raise ConfigError(name, getattr(self, name), problem)

    def store_path(self) -> Path:
        """The observation store: ``store``, or ``<out>.observations.sqlite`` beside the portfolio."""
        return self.store or self.out.parent / f"{self.out.name}.observations.sqlite"

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


def _search_space(ds: Dataset, opts: RebuildOptions) -> Any:
    """The space BOHB searches on one dataset (ImageNet offered only where its weights are installed)."""
    sc = opts.scenario
    return build_search_space(sc.backbones, sc.pretrained, seed=sc.seed, modality=ds.modality, gate_imagenet=True)


def _runs(name: str, opts: RebuildOptions) -> list[tuple[int, Path, str]]:
    """(index, run directory, run id) of each of the scenario's BOHB runs on one dataset."""
    sc = opts.scenario
    return [(k, opts.work() / name / f"bohb-{k}", f"{name}-{sc.key()}-{k}") for k in range(sc.n_runs)]


def search_dataset(name: str, ds: Dataset, opts: RebuildOptions, summary: DatasetSummary | None = None) -> Trial:
    """``scenario.n_runs`` BOHB runs on one dataset; the best incumbent over the runs."""
    sc = opts.scenario
    space = _search_space(ds, opts)
    best: list[Trial] = []
    for k, run_dir, run_id in _runs(name, opts):
        trials = run_bohb(space, OBJECTIVE, run_dir, run_id,
                          min_budget=sc.min_budget, max_budget=sc.max_budget, n_iterations=sc.n_iterations,
                          eta=sc.eta, n_workers=opts.n_workers, host=opts.nameserver_host,
                          port=opts.nameserver_port, seed=dataset_seed(sc.seed, name) + k, resume=opts.resume,
                          objective_kwargs=_objective_kwargs(ds, opts, _identity(summary), "bohb"))
        best.append(incumbent(trials))
        _advance(opts, search=f"{name}/bohb-{k}")
    return min(best, key=lambda t: t.loss)  # type: ignore[arg-type,return-value]


Identity = tuple[str, str]  # (content hash, group) of a dataset in the observation store


def _identity(summary: DatasetSummary | Any | None) -> Identity | None:
    """(content hash, group) from a DatasetSummary or its JSON form."""
    if summary is None:
        return None
    data = summary if isinstance(summary, dict) else summary.model_dump(mode="json")
    return str(data["content_hash"]), str(data.get("group") or data["name"])


def _objective_kwargs(ds: Dataset, opts: RebuildOptions, identity: Identity | None = None, source: str = "matrix",
                      ) -> dict[str, Any]:
    """Arguments of the fine-tune objective for one dataset, with its identity in the observation store."""
    kwargs = {"dataset": str(ds.root), "budget_kind": opts.scenario.budget_kind, "score": opts.scenario.score,
              "base": {"seed": opts.scenario.seed, **opts.base_config}, "time_budget": DEFAULT_TIME_BUDGET,
              "t0": DEFAULT_T0, "store": str(opts.store_path()), "dataset_name": ds.name, "source": source}
    if identity is not None:
        kwargs.update({"dataset_hash": identity[0], "group": identity[1]})
    return kwargs


def performance_data(candidates: dict[str, dict[str, Any]], datasets: dict[str, Dataset],
                     opts: RebuildOptions, identities: dict[str, Identity] | None = None) -> PerformanceData:
    """Every candidate evaluated on every dataset at the maximum budget, with its learning curve.

    Every cell goes through the observation store: a cell already there is read back (the resume), a new
    one is trained and appended; a failed run is NaN in the matrix. ``second_seed_fraction`` of the cells
    also run with seed + 1 (the noise is reported); a cell's matrix curve is the mean of its completed seeds'
    curves (:func:`~portfolio.performance.mean_curve`). Scores are the curves' ALC at the scenario's T.
    """
    from tqdm import tqdm

    from offline_search.pool import second_seed_cells

    ids = identities or {}
    store = ObservationStore(opts.store_path())
    legacy_path = opts.work() / LEGACY_CELLS  # cells of builds made before the store (read-only)
    legacy: dict[str, Any] = json.loads(legacy_path.read_text()) if legacy_path.is_file() else {}
    pool = [_Id(c) for c in candidates]
    extra = second_seed_cells(pool, list(datasets), opts.second_seed_fraction, opts.scenario.seed)
    # dataset-major: an interrupted build holds whole columns, so the gap oracle - single best can be read early
    todo = [(c, d, 0) for d in sorted(datasets) for c in candidates]
    todo += [(c, d, 1) for d in sorted(datasets) for c in candidates if (c, d) in extra]
    opts.tracker.cells_total = len(todo)
    if opts.ray or opts.ray_address:
        _cells_on_ray(todo, candidates, datasets, ids, legacy, store, opts)
    curves: dict[tuple[str, str], CellCurve | None] = {}
    seeds: dict[tuple[str, str], list[tuple[list[tuple[float, float]], float]]] = {}
    for n, (source, target, offset) in enumerate(tqdm(todo, desc="cells", unit="cell", disable=not opts.progress_bar),
                                                 1):
        config = {**candidates[source], "seed": int(candidates[source].get("seed", opts.scenario.seed)) + offset}
        kwargs = _objective_kwargs(datasets[target], opts, ids.get(target), "matrix")
        old = legacy.get(f"{source}->{target}") if offset == 0 else None
        if isinstance(old, dict) and not _stored(store, config, kwargs, opts):
            seeds.setdefault((source, target), []).append(
                ([(float(t), float(v)) for t, v in old["curve"]], float(old["budget_s"])))
            _advance(opts, cell=(source, target, offset))
            continue
        if not _stored(store, config, kwargs, opts):
            _say(opts, f"cell {n}/{len(todo)}: candidate {source} on {target}" + (" (second seed)" if offset else ""))
        try:
            info = finetune_objective(config, opts.scenario.max_budget, **kwargs)["info"]
        except Exception as exc:  # noqa: BLE001 - stored as a failed observation; the cell is NaN
            info = {"error": f"{type(exc).__name__}: {exc}"}
        if "error" not in info:
            seeds.setdefault((source, target), []).append(
                ([(float(t), float(v)) for t, v in info["curve"]], float(info["budget_s"])))
        _advance(opts, cell=(source, target, offset))
    for key, runs in seeds.items():  # a cell's seeds become one curve: their mean (failed seeds left out)
        points = mean_curve([r for r, _ in runs])
        curves[key] = CellCurve(t=tuple(t for t, _ in points), nauc=tuple(v for _, v in points),
                                budget_s=max(b for _, b in runs))
    return matrix_from_curves(list(candidates), sorted(datasets), curves, time_budget=DEFAULT_TIME_BUDGET,
                              t0=DEFAULT_T0)


def _cells_on_ray(todo: list[tuple[str, str, int]], candidates: dict[str, dict[str, Any]],
                  datasets: dict[str, Dataset], ids: dict[str, Identity], legacy: dict[str, Any],
                  store: ObservationStore, opts: RebuildOptions) -> None:
    """Run every cell of ``todo`` that is in neither the store nor the legacy cells as a Ray task; the rows
    land in the store, so the serial loop that follows only reads them back."""
    from offline_search.ray_cells import CellTask, run_cells

    tasks = []
    keys: dict[int, tuple[str, str, int]] = {}
    for source, target, offset in todo:
        config = {**candidates[source], "seed": int(candidates[source].get("seed", opts.scenario.seed)) + offset}
        kwargs = _objective_kwargs(datasets[target], opts, ids.get(target), "matrix")
        if target not in ids:
            continue
        if _stored(store, config, kwargs, opts) or (offset == 0 and isinstance(legacy.get(f"{source}->{target}"),
                                                                               dict)):
            opts.tracker.cells_done.add((source, target, offset))
            continue
        cell = {k: kwargs[k] for k in ("budget_kind", "base", "time_budget", "t0", "dataset_name", "dataset_hash",
                                       "group", "source")}
        tasks.append(CellTask(config=config, budget=opts.scenario.max_budget, dataset=str(datasets[target].root),
                              kwargs=cell))
        keys[id(tasks[-1])] = (source, target, offset)

    def arrived(task: CellTask, obs: Any) -> None:
        source, target, offset = keys[id(task)]
        _say(opts, f"Ray: candidate {source} on {target} done ({obs.status}, seed {obs.seed})")
        _advance(opts, cell=keys[id(task)])

    if tasks:
        _say(opts, f"{len(tasks)} cells on Ray ({opts.ray_address or f'local, {opts.n_workers} workers'})")
        run_cells(tasks, store, address=opts.ray_address, n_workers=max(1, opts.n_workers),
                  progress=opts.progress_bar, on_done=arrived)


class _Id:
    """A candidate id where :func:`second_seed_cells` expects a candidate."""

    def __init__(self, cid: str) -> None:
        self.id = cid


def _stored(store: ObservationStore, config: dict[str, Any], kwargs: dict[str, Any], opts: RebuildOptions) -> bool:
    """True when the observation store already holds this cell (so nothing is trained)."""
    if "dataset_hash" not in kwargs:
        return False
    cfg = FinetuneConfig.from_configspace(config, base=kwargs["base"])
    return store.get(kwargs["dataset_hash"], cfg, opts.scenario.max_budget, opts.scenario.budget_kind, cfg.seed,
                     DEFAULT_TIME_BUDGET, DEFAULT_T0) is not None


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
    """Run the whole offline job and write the portfolio directory ``opts.out`` (with ``ray``/``ray_address``,
    one Ray session serves both the searches and the cells)."""
    with warm_workers():  # BOHB's local worker processes import torch once per rebuild, not once per search
        if not (opts.ray or opts.ray_address):
            return _rebuild(opts)
        from offline_search.ray_cells import ray_session

        with ray_session(opts.ray_address, opts.n_workers):
            return _rebuild(opts)


def _rebuild(opts: RebuildOptions) -> Path:
    """:func:`rebuild`'s steps."""
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
    summaries = {name: summarize(ds) for name, ds in datasets.items()}
    incumbents: dict[str, dict[str, Any]] = {}
    scores: dict[str, float] = {}
    searched = searched_datasets(summaries, opts)
    _plan(opts, len(searched), len(datasets))
    for name, best in search_all(searched, datasets, summaries, opts).items():
        incumbents[name] = best.config
        scores[name] = -float(best.loss)  # type: ignore[arg-type]
    base = {"seed": opts.scenario.seed, **opts.base_config}
    entries = [PortfolioEntry.from_objects(summaries[n], FinetuneConfig.from_configspace(incumbents[n], base=base),
                                           scores[n], opts.scenario.max_budget, opts.scenario.budget_kind)
               for n in sorted(incumbents)]
    pool = candidate_pool(entries, opts.include_default, opts.scenario.seed, n_sobol=opts.n_sobol,
                          space=build_search_space(opts.scenario.backbones, opts.scenario.pretrained,
                                                   gate_imagenet=True), base=opts.base_config)
    if len(incumbents) < len(datasets):
        entries = _entries_from_pool(entries, pool, datasets, summaries, opts)
    return assemble(entries, datasets, opts, pool=pool)


def search_all(names: list[str], datasets: dict[str, Dataset], summaries: dict[str, DatasetSummary],
               opts: RebuildOptions) -> dict[str, Trial]:
    """The best BOHB trial on each of ``names``: the runs go to Ray first with ``--ray``/``--ray-address``
    (then only read back here), else they run one after the other on this machine."""
    if opts.ray or opts.ray_address:
        _searches_on_ray(names, datasets, summaries, opts)
    best = {}
    for name in names:
        unit = "clips" if summaries[name].modality == "video" else "images"
        if not all((run_dir / DONE_NAME).is_file() for _, run_dir, _ in _runs(name, opts)):
            _say(opts, f"BOHB on {name} ({summaries[name].n_items} {unit})")
        best[name] = search_dataset(name, datasets[name], opts, summaries[name])
    return best


def _plan(opts: RebuildOptions, n_searched: int, n_datasets: int) -> None:
    """Totals for the progress fraction: every BOHB run, and the cells of the pool expected from the scenario
    (incumbents + default + Sobol points, with second seeds; made exact when the pool is known)."""
    sc = opts.scenario
    pool = n_searched + int(opts.include_default) + opts.n_sobol
    opts.tracker.search_weight = bohb_cost(sc.min_budget, sc.max_budget, sc.eta, sc.n_iterations)
    opts.tracker.searches_total = n_searched * sc.n_runs
    opts.tracker.cells_total = pool * n_datasets + math.ceil(opts.second_seed_fraction * pool * n_datasets)


def _searches_on_ray(names: list[str], datasets: dict[str, Dataset], summaries: dict[str, DatasetSummary],
                     opts: RebuildOptions) -> None:
    """Run every BOHB run of ``names`` not yet finished as a Ray task (:mod:`offline_search.ray_search`); its logs
    land in the usual run directory, so :func:`search_dataset` afterwards only reads them back."""
    from offline_search.hpb import export_run, prepare_run
    from offline_search.ray_search import SearchTask, run_searches

    sc = opts.scenario
    store = ObservationStore(opts.store_path())
    tasks = []
    for name in names:
        ident = _identity(summaries[name])
        kwargs = {k: v for k, v in _objective_kwargs(datasets[name], opts, ident, "bohb").items() if k != "store"}
        known = tuple(store.observations(dataset_hashes=[ident[0]])) if ident else ()
        space = _search_space(datasets[name], opts)
        for k, run_dir, run_id in _runs(name, opts):
            if prepare_run(run_dir, opts.resume, overwrite=False):
                continue
            tasks.append(SearchTask(name=name, run_dir=run_dir, run_id=run_id, space=space,
                                    objective=OBJECTIVE, objective_kwargs=kwargs, min_budget=sc.min_budget,
                                    max_budget=sc.max_budget, n_iterations=sc.n_iterations, eta=sc.eta,
                                    seed=dataset_seed(sc.seed, name) + k, previous=export_run(run_dir), known=known))

    def arrived(task: SearchTask) -> None:
        _say(opts, f"Ray: BOHB on {task.name} done ({task.run_dir.name})")
        _advance(opts, search=f"{task.name}/{task.run_dir.name}")

    if tasks:
        _say(opts, f"{len(tasks)} BOHB searches on Ray ({opts.ray_address or f'local, {opts.n_workers} workers'})")
        run_searches(tasks, store, address=opts.ray_address, n_workers=max(1, opts.n_workers),
                     progress=opts.progress_bar, on_done=arrived)


def searched_datasets(summaries: dict[str, DatasetSummary], opts: RebuildOptions) -> list[str]:
    """The datasets BOHB runs on: all, or (``search_per_group`` = k) the first k of each group by name."""
    if opts.search_per_group <= 0:
        return sorted(summaries)
    taken: dict[str, int] = {}
    chosen = []
    for name in sorted(summaries):
        group = summaries[name].group or name
        if taken.get(group, 0) < opts.search_per_group:
            taken[group] = taken.get(group, 0) + 1
            chosen.append(name)
    return chosen


def _entries_from_pool(entries: list[PortfolioEntry], pool: list[Candidate], datasets: dict[str, Dataset],
                       summaries: dict[str, DatasetSummary], opts: RebuildOptions) -> list[PortfolioEntry]:
    """Entries for the datasets BOHB did not search: the pool candidate that scores best on each (its cells
    are computed here and read back from the store by :func:`assemble`)."""
    data = performance_data({c.id: c.configuration for c in pool}, datasets, opts,
                            {n: _identity(s) for n, s in summaries.items()})  # type: ignore[misc]
    m = data.matrix
    out = list(entries)
    for name in sorted(set(datasets) - {e.dataset for e in entries}):
        column = m.scores[:, m.dataset_index(name)]
        if np.isnan(column).all():
            raise MetarecError(f"no candidate of the pool completed a run on {name}; see {opts.store_path()}")
        best = int(np.nanargmax(column))
        out.append(PortfolioEntry.from_objects(summaries[name], pool[best].config(), float(column[best]),
                                               opts.scenario.max_budget, opts.scenario.budget_kind))
    return sorted(out, key=lambda e: e.dataset)


def candidate_pool(entries: list[PortfolioEntry], include_default: bool = True, seed: int = 0, n_sobol: int = 0,
                   space: Any = None, base: dict[str, Any] | None = None) -> list[Candidate]:
    """The candidates every dataset is evaluated with: each entry's incumbent, the seed-000 default and
    ``n_sobol`` space-filling (Sobol) points of ``space``; a configuration already in the pool is not added."""
    from offline_search.pool import sobol_candidates
    from portfolio.candidates import incumbent_candidates

    pool = incumbent_candidates(entries)
    default = default_candidate(seed)
    extra = ([default] if include_default else []) + (sobol_candidates(space, n_sobol, seed, base) if n_sobol else [])
    for cand in extra:
        if all(c.configuration != cand.configuration for c in pool):
            pool.append(cand)
    return pool


def assemble(entries: list[PortfolioEntry], datasets: dict[str, Dataset], opts: RebuildOptions,
             pool: list[Candidate] | None = None, extra_provenance: dict[str, Any] | None = None) -> Path:
    """Known datasets with their incumbents → every candidate on every dataset (curves) → fingerprints →
    matchers → selection calibration → the saved portfolio directory (shared by rebuild and update)."""
    pool = pool if pool is not None else candidate_pool(entries, opts.include_default, opts.scenario.seed)
    identities = {e.dataset: _identity(e.summary) for e in entries}
    data = performance_data({c.id: c.configuration for c in pool}, datasets, opts, identities)  # type: ignore[arg-type]
    noise = seed_noise(ObservationStore(opts.store_path()), source="matrix")
    extra_provenance = {**(extra_provenance or {}), "seed_noise": noise, "observation_store": opts.store_path().name}
    _say(opts, "fingerprints and matchers")
    fpr = Fingerprinter(opts.fingerprint_backbone, opts.fingerprint_weights, resolution=opts.fingerprint_resolution,
                        seed=opts.scenario.seed)
    fps = {e.dataset: fpr.fingerprint(datasets[e.dataset], e.summary["content_hash"], n_samples=opts.n_samples,
                                      seed=opts.scenario.seed) for e in entries}
    matchers = fit_matchers(fps, opts)
    groups = {e.dataset: str(e.summary.get("group") or e.dataset) for e in entries}
    grouped = len(set(groups.values())) < len(groups)
    _say(opts, "candidate costs and the selection calibration (inner leave-one-"
               + ("group-out: derivatives of one source are held out together)" if grouped else "out)"))
    pool = with_costs(pool)
    reduced = build_portfolio(entries=entries, matrix=data.matrix, fingerprint_spec=fpr.spec,
                              config_space=_space(opts, datasets), matcher_names=opts.matchers, candidates=pool,
                              performance=data).reduced_portfolio
    selection = calibrate(data, pool, {n: f.features for n, f in fps.items()}, matchers, reduced, groups=groups,
                          seed=opts.scenario.seed, summaries={e.dataset: e.summary for e in entries})
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


def _advance(opts: RebuildOptions, search: str | None = None, cell: tuple[str, str, int] | None = None) -> None:
    """Count a finished BOHB run or cell and tell the caller (the service's job reports the fraction here)."""
    if search is not None:
        opts.tracker.searches_done.add(search)
    if cell is not None:
        opts.tracker.cells_done.add(cell)
    if opts.on_advance is not None:
        opts.on_advance(opts.tracker)


def _say(opts: RebuildOptions, message: str) -> None:
    """Report progress to the caller (the CLI prints it)."""
    if opts.on_progress is not None:
        opts.on_progress(message)
