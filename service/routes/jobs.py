"""``/v1/jobs``: queue a fine-tuning run for a worker, watch it, cancel it, download its model and curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from sqlalchemy import select

from finetune.config import FinetuneConfig
from metafeatures.errors import MetarecError
from service import queue
from service.auth import require_user
from service.context import AppContext, get_ctx
from service.db import DatasetRow, JobRow, RecommendationRow
from service.errors import APIError, from_metarec, not_found
from service.jobs import relative_to_root
from service.schemas import MAX_OFFSET, JobCreate, JobList, JobOut, JobStatus
from service.uploads import resolve_inside

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(require_user)])


def job_out(row: JobRow, ctx: AppContext) -> JobOut:
    """Row → response body (server paths shown relative to the data root)."""
    return JobOut(id=row.id, kind=row.kind, needs=row.needs, priority=row.priority,  # type: ignore[arg-type]
                  status=row.status, dataset_id=row.dataset_id,  # type: ignore[arg-type]
                  recommendation_id=row.recommendation_id, params=ctx.public(row.params), progress=row.progress,
                  learning_curve=row.curve or [], alc=row.alc, error=ctx.public(row.error), device=row.device,
                  worker_id=row.worker_id, attempts=row.attempts, cancel_requested=row.cancel_requested,
                  result=ctx.public(row.result), history=ctx.public(row.history or []), created_at=row.created_at,
                  started_at=row.started_at, heartbeat_at=row.heartbeat_at, finished_at=row.finished_at)


def _configuration(ctx: AppContext, body: JobCreate) -> tuple[dict[str, Any], float | None]:
    """The configuration to train and the recommendation's requested budget (if any), validated like the CLI."""
    budget: float | None = None
    if body.recommendation_id is not None:
        with ctx.factory() as session:
            rec = session.get(RecommendationRow, body.recommendation_id)
        if rec is None:
            raise not_found("recommendation", body.recommendation_id)
        raw = rec.payload["configuration"]
        if rec.payload.get("time_budget_requested"):
            budget = float(rec.payload["time_budget_s"])
    else:
        raw = body.configuration or {}
    try:
        config = FinetuneConfig.model_validate(raw)
    except MetarecError as exc:
        raise from_metarec(exc) from None
    if config.pretrained_kind == "checkpoint":  # a checkpoint path must stay inside the data root too
        resolve_inside(ctx.settings.root, config.pretrained)
    return config.to_dict(), budget


@router.post("", status_code=202, response_model=JobOut)
def create_job(body: JobCreate, ctx: AppContext = Depends(get_ctx)) -> JobOut:
    """Queue a fine-tuning job; a ``metarec worker`` runs it. Poll ``GET /v1/jobs/{id}``."""
    with ctx.factory() as session:
        ds = session.get(DatasetRow, body.dataset_id)
    if ds is None:
        raise not_found("dataset", body.dataset_id)
    config, requested = _configuration(ctx, body)
    budget = body.budget_s if body.budget_s is not None else requested
    if budget is None:
        raise APIError(422, "validation_error", "budget_s is required (the recommendation named no time_budget_s)",
                       {"field": "budget_s"})
    if budget > ctx.settings.max_budget_s:
        raise APIError(422, "budget_too_large", f"budget_s must be at most {ctx.settings.max_budget_s:g}",
                       {"max_budget_s": ctx.settings.max_budget_s})
    params = {"configuration": config, "budget_s": budget, "dataset_name": ds.name,
              "dataset_path": relative_to_root(Path(ds.path), ctx.settings.root)}
    job = queue.enqueue(ctx.factory, "finetune", params, ds.id, body.recommendation_id, needs=body.needs,
                        priority=body.priority)
    return job_out(job, ctx)


@router.get("", response_model=JobList)
def list_jobs(status: JobStatus | None = Query(default=None),
              kind: Literal["finetune", "rebuild", "portfolio_update"] | None = Query(default=None),
              limit: int = Query(default=100, ge=1, le=1000),
              offset: int = Query(default=0, ge=0, le=MAX_OFFSET), ctx: AppContext = Depends(get_ctx)) -> JobList:
    """Jobs, newest first, optionally only one status or kind, a page at a time (``limit``, ``offset``)."""
    query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id).limit(limit).offset(offset)
    if status is not None:
        query = query.where(JobRow.status == status)
    if kind is not None:
        query = query.where(JobRow.kind == kind)
    with ctx.factory() as session:
        rows = session.scalars(query).all()
    return JobList(items=[job_out(r, ctx) for r in rows], count=len(rows))


def _job(ctx: AppContext, job_id: str) -> JobRow:
    """The job row or 404."""
    with ctx.factory() as session:
        row = session.get(JobRow, job_id)
    if row is None:
        raise not_found("job", job_id)
    return row


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, ctx: AppContext = Depends(get_ctx)) -> JobOut:
    """Status, progress, learning curve so far, ALC, error reason, device."""
    return job_out(_job(ctx, job_id), ctx)


@router.delete("/{job_id}", response_model=JobOut)
def cancel_job(job_id: str, ctx: AppContext = Depends(get_ctx)) -> JobOut:
    """Cancel: a queued job at once, a running one at its next training step; 409 if already finished."""
    row, changed = queue.cancel(ctx.factory, job_id)
    if row is None:
        raise not_found("job", job_id)
    if not changed:
        raise APIError(409, "job_finished", f"job {job_id} already finished ({row.status})", {"status": row.status})
    return job_out(_job(ctx, job_id), ctx)


def _artifact(ctx: AppContext, job_id: str, name: str, what: str) -> Path:
    """A file a finished fine-tuning job wrote; 409 while it does not exist yet."""
    row = _job(ctx, job_id)
    path = ctx.settings.jobs_dir / row.id / name
    if row.kind != "finetune" or row.status != "succeeded" or not path.is_file():
        raise APIError(409, "not_available", f"job {job_id} has no {what} (status {row.status})",
                       {"status": row.status})
    return path


@router.get("/{job_id}/model", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "the checkpoint"}})
def download_model(job_id: str, ctx: AppContext = Depends(get_ctx)) -> FileResponse:
    """The fine-tuned checkpoint (torch state dict + config + class names + format version)."""
    path = _artifact(ctx, job_id, "model.pt", "model")
    return FileResponse(path, media_type="application/octet-stream", filename=f"{job_id}-model.pt")


@router.get("/{job_id}/curve.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}, "description": "the learning curve"}})
def download_curve(job_id: str, ctx: AppContext = Depends(get_ctx)) -> FileResponse:
    """The learning curve (NAUC and accuracy over log-scaled time, ALC in the title)."""
    return FileResponse(_artifact(ctx, job_id, "curve.png", "learning curve"), media_type="image/png")
