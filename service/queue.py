"""The job queue on the database: enqueue, atomic claim, heartbeat, finish, cancel, requeue of stale jobs.

A claim is one transaction: SQLite runs every transaction as ``BEGIN IMMEDIATE`` (see ``service.db``), so
two workers cannot both read the same queued row; PostgreSQL uses ``SELECT … FOR UPDATE SKIP LOCKED``.
A worker claims only jobs it can run: a kind it knows and a ``needs`` its device satisfies (a CPU worker
never takes a job that asked for CUDA, nor a CUDA worker one that asked for the CPU); among those, the
highest priority first, then the oldest.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.db import JOB_KINDS, JOB_NEEDS, JobRow, new_id, utcnow

FINISHED = ("succeeded", "failed", "cancelled")


def _event(job: JobRow, what: str, **extra: Any) -> None:
    """Append a timestamped entry to the job's history (kept so requeues and retries are visible)."""
    job.history = [*(job.history or []), {"at": utcnow().isoformat(), "event": what, **extra}]


def enqueue(factory: sessionmaker, kind: str, params: dict[str, Any], dataset_id: str | None = None,
            recommendation_id: str | None = None, needs: str = "any", priority: int = 0) -> JobRow:
    """Insert a queued job and return it; ``needs`` is ``any``, ``cpu`` or ``cuda``; higher ``priority`` first."""
    if needs not in JOB_NEEDS:
        raise ValueError(f"needs must be one of {JOB_NEEDS}, not {needs!r}")
    job = JobRow(id=new_id("job"), kind=kind, status="queued", dataset_id=dataset_id, needs=needs,
                 priority=int(priority), recommendation_id=recommendation_id, params=params, curve=[], history=[],
                 attempts=0)
    _event(job, "queued", needs=needs, priority=int(priority))
    with factory.begin() as session:
        session.add(job)
    return job


def satisfies(device: str) -> tuple[str, ...]:
    """The ``needs`` values a worker on ``device`` (``cpu``, ``cuda:N``) can run."""
    return ("any", "cuda") if device.startswith("cuda") else ("any", "cpu")


def claim(factory: sessionmaker, worker_id: str, device: str,
          kinds: tuple[str, ...] = JOB_KINDS) -> JobRow | None:
    """Atomically take the next job this worker can run (kind in ``kinds``, needs satisfied by ``device``):
    highest priority, then oldest; mark it running. None if there is none."""
    with factory.begin() as session:
        query = (select(JobRow)
                 .where(JobRow.status == "queued", JobRow.kind.in_(kinds), JobRow.needs.in_(satisfies(device)))
                 .order_by(JobRow.priority.desc(), JobRow.created_at, JobRow.id).limit(1))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        job = session.scalars(query).first()
        if job is None:
            return None
        now = utcnow()
        job.status, job.worker_id, job.device = "running", worker_id, device
        job.started_at = job.heartbeat_at = now
        job.attempts = (job.attempts or 0) + 1
        job.progress, job.curve, job.alc, job.error, job.result = 0.0, [], None, None, None
        _event(job, "claimed", worker=worker_id, device=device, attempt=job.attempts)
        return job


def _owned(session: Session, job_id: str, worker_id: str) -> JobRow | None:
    """The job if this worker still owns it and it is running (a requeued job is no longer ours)."""
    job = session.get(JobRow, job_id)
    if job is None or job.status != "running" or job.worker_id != worker_id:
        return None
    return job


def heartbeat(factory: sessionmaker, job_id: str, worker_id: str, progress: float | None = None,
              point: dict[str, Any] | None = None) -> bool:
    """Record that the worker is alive (and progress); return True if the job should stop (cancel or lost)."""
    with factory.begin() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return True
        job.heartbeat_at = utcnow()
        if progress is not None:
            job.progress = float(min(max(progress, 0.0), 1.0))
        if point is not None:
            job.curve = [*(job.curve or []), point]
        return bool(job.cancel_requested)


def finish(factory: sessionmaker, job_id: str, worker_id: str, status: str, *, result: dict[str, Any] | None = None,
           alc: float | None = None, error: str | None = None, curve: list[Any] | None = None) -> bool:
    """Write the outcome if this worker still owns the job; False if it was taken away meanwhile."""
    with factory.begin() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return False
        job.status, job.result, job.alc, job.error = status, result, alc, error
        job.finished_at = utcnow()
        if status == "succeeded":
            job.progress = 1.0
        if curve is not None:
            job.curve = curve
        _event(job, status, **({"reason": error} if error else {}))
        return True


def cancel(factory: sessionmaker, job_id: str) -> tuple[JobRow | None, bool]:
    """Cancel a queued job at once; ask a running one to stop. Returns (job, whether this call changed it)."""
    with factory.begin() as session:
        job = session.get(JobRow, job_id)
        if job is None or job.status in FINISHED:
            return job, False
        if job.status == "queued":
            job.status, job.finished_at, job.error = "cancelled", utcnow(), "cancelled before it started"
            _event(job, "cancelled", reason="cancelled while queued")
        else:
            job.cancel_requested = True
            _event(job, "cancel requested")
        return job, True


def requeue_stale(factory: sessionmaker, stale_after_s: float, max_attempts: int) -> list[str]:
    """Running jobs whose worker stopped heartbeating: requeue them, or fail them once attempts are used up."""
    cutoff = utcnow() - dt.timedelta(seconds=stale_after_s)
    changed: list[str] = []
    with factory.begin() as session:
        for job in session.scalars(select(JobRow).where(JobRow.status == "running")):
            beat = job.heartbeat_at
            if beat is not None and beat.tzinfo is None:
                beat = beat.replace(tzinfo=dt.timezone.utc)  # SQLite returns naive datetimes
            if beat is not None and beat >= cutoff:
                continue
            reason = f"worker {job.worker_id} stopped heartbeating (no heartbeat for {stale_after_s:g} s)"
            if job.cancel_requested:
                job.status, job.error, job.finished_at = "cancelled", f"cancelled; {reason}", utcnow()
            elif job.attempts >= max_attempts:
                job.status, job.finished_at = "failed", utcnow()
                job.error = f"{reason}; gave up after {job.attempts} attempt(s)"
            else:
                job.status, job.worker_id = "queued", None
            _event(job, "requeued" if job.status == "queued" else job.status, reason=reason)
            changed.append(job.id)
    return changed


def counts_by_status(factory: sessionmaker) -> dict[str, int]:
    """Number of jobs in each status (for /metrics)."""
    with factory() as session:
        rows = session.execute(select(JobRow.status, func.count()).group_by(JobRow.status)).all()
    return {status: int(n) for status, n in rows}


def release(factory: sessionmaker, job_id: str, worker_id: str, reason: str) -> bool:
    """Put a job this worker owns back in the queue (the worker is shutting down); it keeps its attempt count.

    A job whose cancellation was already requested is cancelled instead: requeued, another worker would
    claim it and start it again.
    """
    with factory.begin() as session:
        job = _owned(session, job_id, worker_id)
        if job is None:
            return False
        if job.cancel_requested:
            job.status, job.error, job.finished_at = "cancelled", f"cancelled; {reason}", utcnow()
            _event(job, "cancelled", reason=reason)
            return True
        job.status, job.worker_id = "queued", None
        _event(job, "requeued", reason=reason)
        return True
