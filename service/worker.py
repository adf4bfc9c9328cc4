"""``metarec worker``: claims queued jobs from the database and runs them on one device, heartbeating.

One worker per device. The worker never holds a job silently: it heartbeats every ``heartbeat_s``; if it
dies, another worker (or the API) sees the stale heartbeat and requeues the job or fails it with the reason.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker

from service import queue
from service.db import JOB_KINDS, JobRow, make_engine, session_factory
from service.jobs import JobStopped, resolve_params, run_finetune_job, run_rebuild_job, run_update_job
from service.learning import record_job
from service.settings import Settings

log = logging.getLogger("metarec.worker")


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda:0`` when CUDA is present, else ``cpu``; anything else is checked by torch."""
    from metafeatures.fingerprint import pick_device

    dev = pick_device(None if device == "auto" else device)
    return f"cuda:{dev.index or 0}" if dev.type == "cuda" else str(dev)


class Worker:
    """Runs jobs one at a time on ``device`` until stopped; claims only ``kinds`` and jobs its device satisfies."""

    def __init__(self, settings: Settings, device: str = "auto", worker_id: str | None = None,
                 factory: sessionmaker | None = None, kinds: tuple[str, ...] | None = None) -> None:
        self.settings = settings
        self.device = resolve_device(device)
        unknown = sorted(set(kinds or ()) - set(JOB_KINDS))
        if unknown:
            from metafeatures.errors import ConfigError

            raise ConfigError("kinds", unknown, f"this worker runs only {list(JOB_KINDS)}")
        self.kinds = tuple(kinds or JOB_KINDS)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{self.device}"
        self.factory = factory or session_factory(make_engine(settings.db_url, wait_s=settings.db_wait_s))
        self.stopping = threading.Event()

    def run(self, once: bool = False) -> int:
        """Poll the queue; with ``once``, stop when it is empty. Returns the number of jobs run."""
        done = 0
        log.info("worker %s (kinds %s, needs %s) polling %s", self.worker_id, ",".join(self.kinds),
                 "/".join(queue.satisfies(self.device)), self.settings.db_url.split("@")[-1])
        while not self.stopping.is_set():
            for job_id in queue.requeue_stale(self.factory, self.settings.stale_after_s, self.settings.max_attempts):
                log.warning("job %s had a dead worker: requeued or failed", job_id)
            job = queue.claim(self.factory, self.worker_id, self.device, self.kinds)
            if job is None:
                if once:
                    break
                self.stopping.wait(self.settings.poll_s)
                continue
            self.run_job(job)
            done += 1
        return done

    def run_job(self, job: JobRow) -> None:
        """Run one claimed job with a heartbeat thread; write its outcome (or requeue it on shutdown)."""
        stop = threading.Event()
        if queue.heartbeat(self.factory, job.id, self.worker_id):  # cancelled (or lost) before it started: the
            stop.set()  # first stage boundary stops it, not a heartbeat that may come after the first stage
        state: dict[str, Any] = {"progress": 0.0}
        beat = threading.Thread(target=self._heartbeat, args=(job.id, stop, state), daemon=True)
        beat.start()
        log.info("job %s (%s) started on %s, attempt %d", job.id, job.kind, self.device, job.attempts)
        out_dir = self.settings.jobs_dir / job.id

        def report(progress: float, point: dict[str, Any] | None) -> None:
            state["progress"] = progress
            if queue.heartbeat(self.factory, job.id, self.worker_id, progress, point):
                stop.set()

        def should_stop() -> bool:
            return stop.is_set() or self.stopping.is_set()

        try:
            outcome = self._dispatch(job, out_dir, report, should_stop)
        except JobStopped as exc:
            outcome = self._stopped(job, str(exc))
        except Exception as exc:  # a job's failure must be recorded, never lost with the worker
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            outcome = {"status": "failed", "error": _reason(exc)}
        finally:
            stop.set()
            beat.join()
        if outcome.get("status") == "requeue":
            queue.release(self.factory, job.id, self.worker_id, outcome["error"])
        else:
            queue.finish(self.factory, job.id, self.worker_id, outcome["status"], result=outcome.get("result"),
                         alc=outcome.get("alc"), error=outcome.get("error"), curve=outcome.get("curve"))
        log.info("job %s: %s", job.id, outcome.get("status"))

    def _dispatch(self, job: JobRow, out_dir: Path, report: Any, should_stop: Any) -> dict[str, Any]:
        """Run the job's kind; cancellation surfaces as a ``cancelled`` outcome."""
        params = resolve_params(job.params, self.settings.root)
        if job.kind == "finetune":
            outcome = run_finetune_job(params, out_dir, self.device, report, should_stop,
                                       observe=lambda result: self._observe(job, params, result))
        elif job.kind == "rebuild":
            outcome = run_rebuild_job(params, out_dir, self.factory, report, should_stop, self.settings.root,
                                      ray_address=self.settings.ray_address)
        elif job.kind == "portfolio_update":
            outcome = run_update_job(params, out_dir, self.settings, self.factory, report, should_stop)
        else:
            return {"status": "failed", "error": f"unknown job kind {job.kind!r}"}
        if outcome["status"] == "cancelled":
            return self._stopped(job, outcome.get("error") or "stopped")
        return outcome

    def _observe(self, job: JobRow, params: dict[str, Any], result: Any) -> dict[str, Any]:
        """Append a finished run to the observation store, unless the worker is shutting down (the job is
        requeued and run again, so the cut-off run is not an outcome of the job)."""
        if self.stopping.is_set():
            return {"stored": False, "reason": "worker shutting down; the job is requeued"}
        return record_job(self.settings, self.factory, job, params, result, self.device)

    def _stopped(self, job: JobRow, why: str) -> dict[str, Any]:
        """A stopped job: requeued if the worker is shutting down, else cancelled by the user."""
        if self.stopping.is_set():
            return {"status": "requeue", "error": f"worker {self.worker_id} shut down"}
        return {"status": "cancelled", "error": f"cancelled by request ({why})"}

    def _heartbeat(self, job_id: str, stop: threading.Event, state: dict[str, Any]) -> None:
        """Beat every ``heartbeat_s`` until the job ends; a cancel request or a lost job sets ``stop``."""
        while not stop.wait(self.settings.heartbeat_s):
            try:
                if queue.heartbeat(self.factory, job_id, self.worker_id, state["progress"]):
                    stop.set()
            except Exception:  # a transient database error must not kill the job; the next beat retries
                log.warning("heartbeat for %s failed:\n%s", job_id, traceback.format_exc())


def _reason(exc: BaseException) -> str:
    """A one-line failure reason for the job row (metarec errors are already user-facing)."""
    from metafeatures.errors import MetarecError

    if isinstance(exc, MetarecError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def serve_worker(settings: Settings, device: str, once: bool = False, kinds: tuple[str, ...] | None = None) -> int:
    """Run one worker until SIGTERM/SIGINT (which requeue the running job) or, with ``once``, an empty queue."""
    worker = Worker(settings, device, kinds=kinds)

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping after requeueing the running job", signum)
        worker.stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return worker.run(once=once)
