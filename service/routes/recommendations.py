"""``POST /v1/recommendations``: fingerprint a registered dataset (or an uploaded batch) and recommend."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from metafeatures.errors import MetarecError
from portfolio.policies import POLICIES
from portfolio.recommender import (
    MAX_TIME_BUDGET_S,
    NoCandidateError,
    Recommendation,
    Recommender,
    SelectionRequest,
    recommend_dataset,
)
from service.auth import require_user
from service.context import AppContext, get_ctx
from service.db import DatasetRow, RecommendationRow, new_id
from service.errors import APIError, from_metarec, not_found
from service.limits import check_pixels, json_body, limited
from service.portfolio_state import Served
from service.schemas import RecommendationOut, RecommendationRequest

router = APIRouter(prefix="/v1/recommendations", tags=["recommendations"], dependencies=[Depends(require_user)])

_DOC: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/RecommendationRequest"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["images"], "properties": {
        "images": {"type": "array", "items": {"type": "string", "format": "binary"},
                   "description": "a small batch of images (PNG, JPEG, …) of the new dataset"},
        "matcher": {"type": "string"}, "top_k": {"type": "integer", "minimum": 1, "maximum": 100},
        "policy": {"type": "string", "enum": list(POLICIES)},
        "time_budget_s": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIME_BUDGET_S},
        "max_params": {"type": "integer", "minimum": 1}, "max_flops": {"type": "integer", "minimum": 1},
        "max_latency_ms": {"type": "number", "exclusiveMinimum": 0},
        "reduced": {"type": "boolean"},
        "evidence": {"type": "string", "enum": ["fingerprints"],
                     "description": "an uploaded batch has no summary, so only its fingerprints can rank"}}}}}}}
_FORM_FIELDS = ("matcher", "top_k", "reduced", "policy", "time_budget_s", "max_params", "max_flops", "max_latency_ms",
                "evidence")


def _recommend_dataset(served: Served, recommender: Recommender, row: DatasetRow, request: SelectionRequest,
                       n_samples: int) -> tuple[Recommendation, int]:
    """The CLI's entry point (load → fingerprint → recommend), with the batcher's shared forward pass."""
    from metafeatures.datasets import open_dataset

    ds = open_dataset(row.path, name=row.name)
    return recommend_dataset(recommender, served.batcher.fingerprinter, ds, request, n_samples=n_samples, seed=0,
                             content_hash=row.content_hash, embed=served.batcher.embed, summary=row.summary)


def _decode_upload(item: tuple[str, bytes], size: tuple[int, int]) -> np.ndarray:
    """One uploaded image → resized RGB pixels, with the dataset reader's checks; 422 naming the file."""
    from metafeatures.images import decode_image_bytes, resize_rgb

    filename, data = item
    try:
        return resize_rgb(decode_image_bytes(data, filename), size)
    except MetarecError as exc:
        raise APIError(422, "invalid_image", f"image {filename!r}: {exc.args[0].split(': ', 1)[-1]}",
                       {"file": filename}) from None


def _upload_features(ctx: AppContext, served: Served, files: list[tuple[str, bytes]]) -> np.ndarray:
    """Decode the uploads in the decode pool (Pillow releases the GIL), then fingerprint them in one batch."""
    size = (served.portfolio.fingerprint_spec.resolution,) * 2
    pixels = list(ctx.decode_pool.map(lambda item: _decode_upload(item, size), files))
    return served.batcher.embed(np.stack(pixels))


async def _parse_multipart(request: Request, ctx: AppContext) -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    """The form's options and image files, with the count and size limits applied."""
    limit = ctx.settings.max_recommend_images
    try:
        form = await limited(request, ctx.settings.max_upload_bytes).form(max_files=limit, max_fields=10)
    except StarletteHTTPException as exc:  # the parser stops at the limit instead of buffering everything
        if "files" in str(exc.detail):
            raise APIError(413, "too_many_images", f"at most {limit} images per request", {"limit": limit}) from None
        raise
    files = [v for v in form.getlist("images") if isinstance(v, UploadFile)]
    if not files:
        raise APIError(422, "validation_error", "multipart request needs one or more 'images' files")
    blobs: list[tuple[str, bytes]] = []
    total = 0
    for f in files:
        data = await f.read()
        total += len(data)
        if total > ctx.settings.max_upload_bytes:
            raise APIError(413, "payload_too_large", "uploaded images exceed the upload limit")
        blobs.append((f.filename or "image", data))
    check_pixels(blobs, ctx.settings.max_image_pixels, ctx.settings.max_request_pixels)
    options = {k: v for k in _FORM_FIELDS if isinstance(v := form.get(k), str)}
    return options, blobs


@router.post("", response_model=RecommendationOut, openapi_extra=_DOC)
async def recommend(request: Request, ctx: AppContext = Depends(get_ctx)) -> RecommendationOut:
    """Rank the known datasets for a registered dataset (JSON) or an uploaded image batch (multipart)."""
    start = time.perf_counter()
    served = ctx.served()
    loop = asyncio.get_running_loop()
    dataset_id: str | None = None
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    if multipart:
        options, blobs = await _parse_multipart(request, ctx)
        body = RecommendationRequest.model_validate({"dataset_id": "upload", **options})
    else:
        body = RecommendationRequest.model_validate_json(await json_body(request))
    matcher = body.matcher or ctx.settings.default_matcher
    recommender = served.recommenders.get(matcher)
    if recommender is None:
        raise APIError(422, "unknown_matcher", f"matcher {matcher!r} is not in portfolio {served.portfolio.version}",
                       {"available": sorted(served.recommenders)})
    selection = SelectionRequest.model_validate(body.selection())
    try:
        if multipart:
            features = await loop.run_in_executor(ctx.pool, _upload_features, ctx, served, blobs)
            rec, n_images = recommender.recommend(features, selection), len(features)
        else:
            with ctx.factory() as session:
                row = session.get(DatasetRow, body.dataset_id)
            if row is None:
                raise not_found("dataset", body.dataset_id)
            dataset_id = row.id
            rec, n_images = await loop.run_in_executor(ctx.pool, _recommend_dataset, served, recommender, row,
                                                       selection, ctx.settings.fingerprint_samples)
    except NoCandidateError as exc:
        raise APIError(422, "no_candidate_within_limits", str(exc), {"cheapest": exc.cheapest}) from None
    except MetarecError as exc:
        raise from_metarec(exc) from None
    out = RecommendationOut(id=new_id("rec"), dataset_id=dataset_id, **rec.model_dump(), n_images=n_images,
                            elapsed_ms=round((time.perf_counter() - start) * 1000.0, 2))
    with ctx.factory.begin() as session:
        session.add(RecommendationRow(id=out.id, dataset_id=dataset_id, matcher=matcher,
                                      portfolio_version=rec.portfolio_version, payload=out.model_dump(mode="json")))
    ctx.metrics.recommendations.labels(matcher).inc()
    return out
