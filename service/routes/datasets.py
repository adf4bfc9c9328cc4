"""``/v1/datasets``: register by server-side path or archive upload; read back summaries and reports."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from metafeatures.errors import MetarecError
from service.auth import require_user
from service.context import AppContext, get_ctx
from service.db import DatasetRow, new_id
from service.errors import APIError, from_metarec, not_found
from service.limits import ENVELOPE, json_body, limited
from service.schemas import MAX_OFFSET, DatasetList, DatasetOut, DatasetRegister
from service.uploads import INCOMING, check_tree_inside, extract_archive, resolve_inside, save_upload, upload_lock

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], dependencies=[Depends(require_user)])

_UPLOAD_DOC: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/DatasetRegister"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["archive"], "properties": {
        "archive": {"type": "string", "format": "binary", "description": ".zip or .tar.gz of the dataset"},
        "name": {"type": "string", "maxLength": 200}}}}}}}


def to_out(row: DatasetRow, ctx: AppContext) -> DatasetOut:
    """Row → response body (server paths in the report shown relative to the data root)."""
    return DatasetOut(id=row.id, name=row.name, source=row.source,  # type: ignore[arg-type]
                      created_at=row.created_at, summary=ctx.public(row.summary))


def _summarise(path: Path, name: str | None) -> dict[str, Any]:
    """Open and summarise (hashes every file): typed dataset errors become 422 for the client."""
    from metafeatures.datasets import open_dataset
    from metafeatures.summary import summarize

    try:
        return summarize(open_dataset(path, name=name)).model_dump(mode="json")
    except MetarecError as exc:
        raise from_metarec(exc) from None


def _checked_summary(root: Path, path: Path, name: str | None) -> dict[str, Any]:
    """Refuse links out of the data root anywhere inside ``path`` (the reader follows them), then summarise."""
    check_tree_inside(root, path)
    return _summarise(path, name)


def _store(factory: sessionmaker, source: str, path: Path, summary: dict[str, Any],
           ident: str) -> tuple[DatasetRow, bool]:
    """Insert the dataset, or return the existing row for the same path and content (idempotent)."""
    with factory.begin() as session:
        existing = session.scalars(select(DatasetRow).where(
            DatasetRow.path == str(path), DatasetRow.content_hash == summary["content_hash"])).first()
        if existing is not None:
            return existing, False
        row = DatasetRow(id=ident, name=summary["name"], source=source, path=str(path),
                         content_hash=summary["content_hash"], summary=summary)
        session.add(row)
        return row, True


async def _register_upload(request: Request, ctx: AppContext) -> tuple[DatasetRow, bool]:
    """Stream the archive to disk under the limit, extract it safely, summarise; on error keep nothing."""
    settings = ctx.settings
    form = await limited(request, settings.max_upload_bytes + ENVELOPE).form(max_files=1, max_fields=4)
    archive = form.get("archive")
    if archive is None or isinstance(archive, str):
        raise APIError(422, "validation_error", "multipart upload needs a file field 'archive' (.zip or .tar.gz)")
    name = form.get("name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 200):
        raise APIError(422, "validation_error", "'name' must be a string of 1 to 200 characters")
    ident = new_id("ds")
    with upload_lock(settings.uploads_dir, ident):
        blob = settings.uploads_dir / INCOMING / f"{ident}.archive"

        async def chunks() -> Any:
            while chunk := await archive.read(1024 * 1024):
                yield chunk

        await save_upload(chunks(), blob, settings.max_upload_bytes)
        dest = settings.uploads_dir / ident
        loop = asyncio.get_running_loop()
        try:
            root = await loop.run_in_executor(ctx.pool, extract_archive, blob, dest, settings.max_extract_files,
                                              settings.max_extract_bytes)
            summary = await loop.run_in_executor(ctx.pool, _summarise, root, name or _stem(archive.filename))
        except APIError:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        finally:
            blob.unlink(missing_ok=True)
        return _store(ctx.factory, "upload", root, summary, ident)


def _stem(filename: str | None) -> str | None:
    """``cats.tar.gz`` → ``cats`` (the dataset's default name)."""
    if not filename:
        return None
    name = Path(filename).name
    for suffix in (".tar.gz", ".tgz", ".zip", ".tar"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or None
    return name or None


@router.post("", status_code=201, response_model=DatasetOut, openapi_extra=_UPLOAD_DOC,
             responses={200: {"model": DatasetOut, "description": "already registered (same path and content)"}})
async def register_dataset(request: Request, ctx: AppContext = Depends(get_ctx)) -> Any:
    """Register a dataset: JSON ``{"path": ...}`` inside the data root, or a multipart archive upload."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        row, created = await _register_upload(request, ctx)
    else:
        body = DatasetRegister.model_validate_json(await json_body(request))
        path = resolve_inside(ctx.settings.root, body.path)
        summary = await asyncio.get_running_loop().run_in_executor(ctx.pool, _checked_summary, ctx.settings.root,
                                                                   path, body.name)
        row, created = _store(ctx.factory, "path", path, summary, new_id("ds"))
    from fastapi.responses import JSONResponse

    return JSONResponse(to_out(row, ctx).model_dump(mode="json"), status_code=201 if created else 200)


@router.get("", response_model=DatasetList)
def list_datasets(limit: int = Query(default=100, ge=1, le=1000), offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
                  ctx: AppContext = Depends(get_ctx)) -> DatasetList:
    """Registered datasets, newest first, a page at a time (``limit``, ``offset``)."""
    query = select(DatasetRow).order_by(DatasetRow.created_at.desc(), DatasetRow.id).limit(limit).offset(offset)
    with ctx.factory() as session:
        rows = session.scalars(query).all()
    return DatasetList(items=[to_out(r, ctx) for r in rows], count=len(rows))


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, ctx: AppContext = Depends(get_ctx)) -> DatasetOut:
    """One dataset with its summary and validation report."""
    with ctx.factory() as session:
        row = session.get(DatasetRow, dataset_id)
    if row is None:
        raise not_found("dataset", dataset_id)
    return to_out(row, ctx)
