"""``/healthz`` (the process answers), ``/readyz`` (portfolio and database loaded), ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from service.context import AppContext, get_ctx

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process serves HTTP."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready: portfolio or database missing"}})
def readyz(ctx: AppContext = Depends(get_ctx)) -> JSONResponse:
    """Readiness: a portfolio is loaded and the database answers."""
    checks: dict[str, str] = {}
    served = ctx.portfolio.served
    checks["portfolio"] = served.portfolio.version if served else f"not loaded: {ctx.portfolio.last_error}"
    try:
        with ctx.factory() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports the failure instead of raising it
        checks["database"] = f"unavailable: {type(exc).__name__}"
    ready = served is not None and checks["database"] == "ok"
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def metrics(ctx: AppContext = Depends(get_ctx)) -> Response:
    """Request latency histograms, recommendations by matcher, jobs by status, queue depth."""
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
