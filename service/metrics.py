"""Prometheus metrics: request latency by route, recommendations by matcher, jobs by status, queue depth."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import queue
from service.db import JOB_STATUSES

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _JobCollector(Collector):
    """Reads job counts from the database at scrape time (the database is the truth, not a counter)."""

    def __init__(self, factory: sessionmaker) -> None:
        self.factory = factory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = queue.counts_by_status(self.factory)
        jobs = GaugeMetricFamily("metarec_jobs", "jobs by status", labels=["status"])
        for status in JOB_STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily("metarec_queue_depth", "queued jobs waiting for a worker",
                                value=counts.get("queued", 0))


class Metrics:
    """One registry per app, so tests can create several apps in one process."""

    def __init__(self, factory: sessionmaker) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("metarec_request_duration_seconds", "HTTP request latency",
                                 ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.recommendations = Counter("metarec_recommendations", "recommendations answered", ["matcher"],
                                       registry=self.registry)
        self.registry.register(_JobCollector(factory))



class MetricsMiddleware:
    """Pure ASGI: time every request, labelled by its route template (bounded cardinality), not its raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(scope["method"], template, str(status["code"])).observe(
                time.perf_counter() - start)
