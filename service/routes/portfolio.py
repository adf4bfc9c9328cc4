"""``/v1/portfolio``: what is served; admin reload (validated, atomic), admin rebuild and admin update (worker
jobs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Depends

from metafeatures.errors import MetarecError
from service import queue
from service.auth import require_admin, require_user
from service.context import AppContext, get_ctx
from service.errors import APIError, from_metarec
from service.jobs import relative_to_root
from service.paths import public_path
from service.portfolio_state import publish_portfolio
from service.routes.jobs import job_out
from service.schemas import JobOut, PortfolioOut, RebuildRequest, ReloadRequest, UpdateRequest
from service.uploads import resolve_inside

router = APIRouter(prefix="/v1/portfolio", tags=["portfolio"])


@router.get("", response_model=PortfolioOut, dependencies=[Depends(require_user)])
def get_portfolio(ctx: AppContext = Depends(get_ctx)) -> PortfolioOut:
    """Version, entries (best configuration per known dataset) and the reduced portfolio."""
    loaded = ctx.served().portfolio
    p = loaded.portfolio
    return PortfolioOut(version=p.version, directory=public_path(loaded.directory, ctx.settings.root),
                        matchers=sorted(loaded.matchers), fingerprint_spec=p.fingerprint_spec,
                        entries=ctx.public([e.model_dump(mode="json") for e in p.entries]),
                        reduced_portfolio=list(p.reduced_portfolio), provenance=ctx.public(p.provenance))


def _reload_target(ctx: AppContext, body: ReloadRequest) -> Path:
    """The directory to load: inside the data root, or the configured portfolio when no path is given."""
    if body.path is None:
        return ctx.settings.resolved_portfolio_dir()
    return resolve_inside(ctx.settings.root, body.path)


@router.post("/reload", response_model=PortfolioOut, dependencies=[Depends(require_admin)])
async def reload_portfolio(body: ReloadRequest, ctx: AppContext = Depends(get_ctx)) -> PortfolioOut:
    """Load a portfolio directory; a bad one is refused (422) and the old one keeps serving."""
    target = _reload_target(ctx, body)
    try:
        await asyncio.get_running_loop().run_in_executor(ctx.pool, ctx.portfolio.load, target)
    except MetarecError as exc:
        err = from_metarec(exc)
        raise APIError(422, "portfolio_refused", f"portfolio {target} refused, the old one keeps serving: "
                       f"{err.message}", {"path": str(target)}) from None
    publish_portfolio(ctx.factory, target, ctx.settings.root)
    return get_portfolio(ctx)


@router.post("/rebuild", status_code=202, response_model=JobOut, dependencies=[Depends(require_admin)])
def rebuild_portfolio(body: RebuildRequest, ctx: AppContext = Depends(get_ctx)) -> JobOut:
    """Queue the offline rebuild (BOHB per dataset, matrix, matchers) as a job; its portfolio is loaded if valid."""
    from finetune.config import FinetuneConfig
    from metafeatures.datasets import open_collection
    from offline_search.scenario import SearchScenario

    collection = resolve_inside(ctx.settings.root, body.collection_path)
    if not collection.is_dir():
        raise APIError(422, "not_a_collection", f"{body.collection_path!r} is not a folder of datasets")
    try:
        names = sorted(open_collection(collection))
    except MetarecError as exc:
        raise from_metarec(exc) from None
    unknown = sorted(set(body.datasets or ()) - set(names))
    if unknown or len(body.datasets or names) < 2:
        raise APIError(422, "invalid_collection", f"the rebuild needs at least two datasets of the collection; it has "
                       f"{names}" + (f", not {unknown}" if unknown else ""), {"datasets": names})
    try:
        scenario = SearchScenario(**body.scenario)
    except TypeError as exc:
        raise APIError(422, "invalid_scenario", f"scenario: {exc}") from None
    except MetarecError as exc:
        raise from_metarec(exc) from None
    try:
        FinetuneConfig.model_validate({**body.base_config, "seed": scenario.seed})
    except MetarecError as exc:
        raise from_metarec(exc) from None
    scenario_fields = {k: v for k, v in scenario.to_dict().items() if k != "format_version"}
    params = {"collection_path": relative_to_root(collection, ctx.settings.root), "datasets": body.datasets,
              "scenario": scenario_fields,
              "n_workers": body.n_workers, "rebuild_options": {
                  "fingerprint_backbone": body.fingerprint_backbone, "fingerprint_weights": body.fingerprint_weights,
                  "fingerprint_resolution": body.fingerprint_resolution, "n_samples": body.n_samples,
                  "matchers": list(body.matchers), "base_config": body.base_config, "ray": body.ray}}
    return job_out(queue.enqueue(ctx.factory, "rebuild", params, needs=body.needs, priority=body.priority), ctx)


@router.post("/update", status_code=202, response_model=JobOut, dependencies=[Depends(require_admin)])
def update_portfolio(body: UpdateRequest, ctx: AppContext = Depends(get_ctx)) -> JobOut:
    """Queue a portfolio update (a worker job): the served portfolio plus every registered dataset the jobs ran on
    (or ``dataset_ids``) as known datasets: the candidate pool evaluated on them through the observation store,
    matchers refitted, selection recalibrated; published only if it loads and validates. 422 when there is
    nothing to learn from."""
    from service.learning import job_datasets, registered_known

    loaded = ctx.served().portfolio
    known = loaded.portfolio.provenance.get("dataset_hashes") or {
        e.dataset: e.summary["content_hash"] for e in loaded.portfolio.entries}
    candidates = {row.id: row for row in job_datasets(ctx.settings, ctx.factory, set(known.values()))}
    wanted = body.dataset_ids or sorted(candidates)
    unknown = sorted(set(wanted) - set(candidates))
    if unknown or not wanted:
        raise APIError(422, "nothing_to_learn", "the update needs registered datasets with job observations that the "
                       "served portfolio does not know" + (f"; not such: {unknown}" if unknown else "; there are none"),
                       {"learnable_dataset_ids": sorted(candidates)})
    collection = None
    if body.collection_path is not None:
        collection = resolve_inside(ctx.settings.root, body.collection_path)
        if not collection.is_dir():
            raise APIError(422, "not_a_collection", f"{body.collection_path!r} is not a folder of datasets")
    located = {name: relative_to_root(Path(row.path), ctx.settings.root)
               for name, row in registered_known(ctx.factory, known).items()}
    params = {"source_dir": relative_to_root(loaded.directory.resolve(), ctx.settings.root), "located": located,
              "source_version": loaded.version, "dataset_ids": list(wanted), "known_names": sorted(known),
              "collection_path": None if collection is None else relative_to_root(collection, ctx.settings.root),
              "include_default": body.include_default}
    job = queue.enqueue(ctx.factory, "portfolio_update", params, needs=body.needs, priority=body.priority)
    return job_out(job, ctx)
