"""``create_app(settings)``: the FastAPI application (OpenAPI at ``/docs``, everything under ``/v1``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from metarec import __version__
from service import queue
from service.context import AppContext
from service.db import DatasetRow, make_engine, session_factory
from service.docs import add_body_schemas, install_docs
from service.errors import install_handlers
from service.limits import ENVELOPE, BodyLimitMiddleware
from service.metrics import Metrics, MetricsMiddleware
from service.portfolio_state import PortfolioState, published_portfolio
from service.routes import datasets, figures, health, jobs, portfolio, recommendations, web
from service.schemas import DatasetRegister, RecommendationRequest
from service.settings import Settings
from service.uploads import remove_orphans

log = logging.getLogger("metarec.service")
SYNC_PERIOD_S = 2.0


def build_context(settings: Settings) -> AppContext:
    """Database, served portfolio (the published one if any, else the configured one), metrics, thread pool."""
    import torch

    torch.set_num_threads(settings.fingerprint_threads)
    factory = session_factory(make_engine(settings.db_url, wait_s=settings.db_wait_s))
    _clean_uploads(settings, factory)
    state = PortfolioState(settings.fingerprint_threads, settings.max_recommend_images)
    published = published_portfolio(factory, settings.root)
    try:
        state.load(settings.resolved_portfolio_dir() if published is None else published)
    except Exception as exc:  # the API still starts: /readyz says why it is not ready
        state.last_error = str(exc)
        log.error("no portfolio loaded: %s", exc)
    return AppContext(settings=settings, factory=factory, portfolio=state, metrics=Metrics(factory),
                      pool=ThreadPoolExecutor(max_workers=4, thread_name_prefix="metarec-api"),
                      decode_pool=ThreadPoolExecutor(max_workers=settings.fingerprint_threads,
                                                     thread_name_prefix="metarec-decode"))


def _clean_uploads(settings: Settings, factory: sessionmaker) -> None:
    """Remove partial archives and extractions a killed API process left behind (registered uploads stay)."""
    with factory() as session:
        registered = set(session.scalars(select(DatasetRow.id).where(DatasetRow.source == "upload")))
    remove_orphans(settings.uploads_dir, registered)


async def _housekeeping(ctx: AppContext) -> None:
    """Follow published portfolios and requeue jobs whose worker died, even while no worker polls."""
    loop = asyncio.get_running_loop()
    ticks = 0
    while True:
        await asyncio.sleep(SYNC_PERIOD_S)
        ticks += 1
        try:
            await loop.run_in_executor(ctx.pool, ctx.portfolio.sync, ctx.factory, ctx.settings.root)
            if ticks * SYNC_PERIOD_S >= ctx.settings.stale_after_s / 2:
                ticks = 0
                await loop.run_in_executor(ctx.pool, queue.requeue_stale, ctx.factory, ctx.settings.stale_after_s,
                                           ctx.settings.max_attempts)
        except Exception:  # housekeeping must outlive a transient database error
            log.exception("housekeeping failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; settings default to the ``METAREC_*`` environment."""
    settings = settings or Settings()
    ctx = build_context(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_housekeeping(ctx))
        try:
            yield
        finally:
            task.cancel()
            ctx.pool.shutdown(wait=False, cancel_futures=True)
            ctx.decode_pool.shutdown(wait=False, cancel_futures=True)
            if ctx.portfolio.served is not None:
                ctx.portfolio.served.batcher.close()

    app = FastAPI(title="metarec", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Recommends a pretrained backbone and fine-tuning hyperparameters for a new image "
                              "dataset by matching its fingerprint to known datasets, and fine-tunes it on request. "
                              "Authenticate with `Authorization: Bearer <API key>`.")
    app.state.ctx = ctx
    app.state.settings = settings
    app.state.scrub = ctx.public
    install_handlers(app)
    for module in (figures, web):  # the portfolio's figures and the web page at /
        app.include_router(module.router)
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)
    app.add_middleware(BodyLimitMiddleware, json_limit=settings.max_json_bytes,
                       upload_limit=settings.max_upload_bytes + ENVELOPE)
    for module in (health, datasets, recommendations, jobs, portfolio):
        app.include_router(module.router)
    install_docs(app)
    add_body_schemas(app, (DatasetRegister, RecommendationRequest))
    return app
