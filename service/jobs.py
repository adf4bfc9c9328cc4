"""What a worker runs for each job kind: a fine-tuning run, the offline portfolio rebuild, or a portfolio update.

Job parameters name datasets and collections relative to the data root, so workers on other hosts can mount
the shared root at another path; :func:`resolve_params` makes them absolute under the worker's own root.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker

Report = Callable[[float, dict[str, Any] | None], None]
ShouldStop = Callable[[], bool]


class JobStopped(Exception):
    """Raised inside a job when it was asked to stop (cancel request, or the worker shutting down)."""


PATH_PARAMS = ("dataset_path", "collection_path", "source_dir")


def resolve_params(params: dict[str, Any], root: Path) -> dict[str, Any]:
    """``params`` with their data paths under ``root`` (an absolute path, from a version-1 job, stays)."""
    return {k: str(root / v) if k in PATH_PARAMS and isinstance(v, str) else v for k, v in params.items()}


def relative_to_root(path: Path, root: Path) -> str:
    """How a job stores a path inside the data root."""
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _fresh(out_dir: Path) -> Path:
    """An empty output folder for this attempt (a retried job starts clean)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    return out_dir


def run_finetune_job(params: dict[str, Any], out_dir: Path, device: str, report: Report,
                     should_stop: ShouldStop, observe: Callable[[Any], dict[str, Any]] | None = None,
                     ) -> dict[str, Any]:
    """Fine-tune ``params['configuration']`` on the dataset for ``budget_s``; write metrics, checkpoint, curve.

    ``observe`` gets the result (before the outcome is written) and returns what it recorded, which goes into
    the job's result as ``observation`` (the worker appends the run to the observation store)."""
    from finetune.config import FinetuneConfig
    from finetune.plots import plot_curve
    from finetune.trainer import TrainOptions, finetune
    from metafeatures.datasets import open_dataset

    config = FinetuneConfig.model_validate(params["configuration"])
    dataset = open_dataset(params["dataset_path"], name=params.get("dataset_name"))

    def on_progress(fraction: float, point: Any) -> None:
        report(fraction, None if point is None else point.model_dump(mode="json"))

    options = TrainOptions(budget_s=float(params["budget_s"]), device=device, on_progress=on_progress,
                           should_stop=should_stop, **params.get("train_options", {}))
    result = finetune(config, dataset, options, _fresh(out_dir))
    curve = [p.model_dump(mode="json") for p in result.learning_curve]
    if result.learning_curve:
        plot_curve(result, out_dir / "curve.png")
    summary = {k: v for k, v in result.model_dump(mode="json").items() if k != "learning_curve"}
    if observe is not None:
        summary["observation"] = observe(result)
    if result.status == "cancelled":
        return {"status": "cancelled", "error": result.reason, "curve": curve, "result": summary}
    if result.status == "diverged":
        return {"status": "failed", "error": f"training diverged: {result.reason}", "curve": curve, "result": summary}
    return {"status": "succeeded", "alc": result.alc, "curve": curve, "result": summary}


def run_rebuild_job(params: dict[str, Any], out_dir: Path, factory: sessionmaker, report: Report,
                    should_stop: ShouldStop, root: Path, ray_address: str | None = None) -> dict[str, Any]:
    """Run the offline rebuild into ``out_dir/portfolio``; publish it only if it loads and validates.

    A requeued job (its worker died or shut down) resumes from ``out_dir/work``: finished BOHB iterations and
    matrix cells are read back, not run again. Progress is the rebuild's share of work done (BOHB runs weighed
    in full-budget fine-tunes, cells one each; 0.99 until the portfolio is published). A cancel request stops
    it before the next dataset or cell; on Ray, the searches or cells still pending are cancelled."""
    from metafeatures.datasets import open_collection
    from offline_search.progress import RebuildProgress
    from offline_search.rebuild import RebuildOptions, rebuild
    from offline_search.scenario import SearchScenario
    from portfolio.artifact import load_portfolio
    from service.portfolio_state import publish_portfolio

    collection = Path(params["collection_path"])
    names = params.get("datasets") or sorted(open_collection(collection))
    seen: list[str] = []

    def on_message(message: str) -> None:
        seen.append(message)
        if should_stop():
            raise JobStopped(f"stopped during: {message}")

    def on_advance(progress: RebuildProgress) -> None:
        report(min(progress.fraction(), 0.99), None)
        if should_stop():
            raise JobStopped(f"stopped after {len(progress.searches_done)} of {progress.searches_total} BOHB runs "
                             f"and {len(progress.cells_done)} of {progress.cells_total} cells")

    scenario = SearchScenario(**params.get("scenario", {}))
    extra = dict(params.get("rebuild_options", {}))
    extra["matchers"] = tuple(extra.get("matchers", ("kmeans", "mlp", "moments")))
    if extra.get("ray") and ray_address:
        extra["ray_address"] = ray_address
    resume = (out_dir / "work").is_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        on_message("resuming from the work of an earlier attempt")
    opts = RebuildOptions(collection=collection, out=out_dir / "portfolio", scenario=scenario,
                          work_dir=out_dir / "work", n_workers=int(params.get("n_workers", 1)),
                          datasets=tuple(names), on_progress=on_message, on_advance=on_advance, resume=resume,
                          **extra)
    path = rebuild(opts)
    loaded = load_portfolio(path)  # refuses a malformed portfolio: the old one keeps serving
    publish_portfolio(factory, path, root)
    return {"status": "succeeded", "result": {"portfolio_dir": relative_to_root(path, root),
                                              "portfolio_version": loaded.version, "resumed": resume, "log": seen,
                                              "work": opts.tracker.to_dict()}}


def run_update_job(params: dict[str, Any], out_dir: Path, settings: Any, factory: sessionmaker, report: Report,
                   should_stop: ShouldStop) -> dict[str, Any]:
    """``offline_search.update.update_portfolio`` of the served portfolio plus the registered datasets the jobs
    ran on, into ``out_dir/portfolio``; published only if it loads and validates (the old one serves meanwhile).

    Progress is the fraction of cells done; a cancel request stops it between cells (or between the later
    steps). A requeued job resumes: ``out_dir/work`` is kept and every finished cell is in the store."""
    from offline_search.update import update_portfolio
    from portfolio.artifact import load_portfolio
    from service.learning import added_datasets
    from service.portfolio_state import publish_portfolio

    root = settings.root
    added = added_datasets(factory, params["dataset_ids"], params.get("known_names", []))
    seen: list[str] = []
    state = {"progress": 0.0}

    def check(where: str) -> None:
        if should_stop():
            raise JobStopped(f"stopped {where}")

    def on_message(message: str) -> None:
        seen.append(message)
        report(state["progress"], None)
        check(f"during: {message}")

    def on_cell(done: int, total: int) -> None:
        state["progress"] = max(state["progress"], min(done / max(total, 1), 0.99))
        report(state["progress"], None)
        check(f"after cell {done}/{total}")

    resume = (out_dir / "work").is_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        on_message("resuming: cells already in the observation store are read back")
    collection = Path(params["collection_path"]) if params.get("collection_path") else None
    path = update_portfolio(Path(params["source_dir"]), out_dir / "portfolio", collection=collection,
                            work_dir=out_dir / "work", include_default=bool(params.get("include_default", True)),
                            on_progress=on_message, added={n: Path(p) for n, p in added.items()},
                            store=settings.store_path, on_cell=on_cell,
                            located={n: root / p for n, p in params.get("located", {}).items()})
    check("before publishing")
    loaded = load_portfolio(path)  # refuses a malformed portfolio: the old one keeps serving
    publish_portfolio(factory, path, root)
    return {"status": "succeeded", "result": {
        "portfolio_dir": relative_to_root(path, root), "portfolio_version": loaded.version, "resumed": resume,
        "updated_from": loaded.portfolio.provenance.get("updated_from"), "added_datasets": sorted(added),
        "datasets": len(loaded.portfolio.datasets), "candidates": len(loaded.candidates), "log": seen}}
