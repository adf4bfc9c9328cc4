"""The job queue on both databases it supports: a SQLite file and a real PostgreSQL server (pgserver).

Claims must be atomic under concurrency, dead workers' jobs requeued or failed with a reason, cancellation
and ownership respected.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import update

from metafeatures.errors import ArtifactError
from service import queue
from service.db import JobRow, MetaRow, make_engine, session_factory


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    pgserver = pytest.importorskip("pgserver", reason="pgserver (PostgreSQL binaries from PyPI) is a dev dependency")
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
    server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def factory(request, tmp_path: Path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = make_engine(url)
    if request.param == "postgresql":  # one server for the module: start each test from empty tables
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM jobs")
    yield session_factory(engine)
    engine.dispose()


def _enqueue(factory, n: int) -> list[str]:
    return [queue.enqueue(factory, "finetune", {"i": i}).id for i in range(n)]


def test_concurrent_claims_take_each_job_exactly_once(factory):
    ids = _enqueue(factory, 24)
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := queue.claim(factory, name, "cpu")) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(claimed) == sorted(ids)  # none twice, none lost
    with factory() as s:
        rows = s.query(JobRow).all()
    assert {r.status for r in rows} == {"running"} and all(r.attempts == 1 for r in rows)


def test_claim_order_is_oldest_first_and_empty_queue_gives_none(factory):
    first, second = _enqueue(factory, 2)
    assert queue.claim(factory, "w", "cpu").id == first
    assert queue.claim(factory, "w", "cpu").id == second
    assert queue.claim(factory, "w", "cpu") is None


def _age_heartbeat(factory, job_id: str, seconds: float) -> None:
    with factory.begin() as s:
        s.execute(update(JobRow).where(JobRow.id == job_id).values(
            heartbeat_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)))


def test_stale_jobs_are_requeued_then_failed_with_a_reason(factory):
    (job_id,) = _enqueue(factory, 1)
    for attempt in (1, 2):
        job = queue.claim(factory, f"w{attempt}", "cpu")
        assert job.id == job_id and job.attempts == attempt
        assert queue.requeue_stale(factory, stale_after_s=60, max_attempts=2) == []  # fresh heartbeat: untouched
        _age_heartbeat(factory, job_id, 120)
        assert queue.requeue_stale(factory, stale_after_s=60, max_attempts=2) == [job_id]
    with factory() as s:
        job = s.get(JobRow, job_id)
    assert job.status == "failed" and "stopped heartbeating" in job.error and "2 attempt" in job.error
    events = [h["event"] for h in job.history]
    assert events == ["queued", "claimed", "requeued", "claimed", "failed"]


def test_a_requeued_job_no_longer_belongs_to_its_old_worker(factory):
    (job_id,) = _enqueue(factory, 1)
    queue.claim(factory, "old", "cpu")
    _age_heartbeat(factory, job_id, 120)
    queue.requeue_stale(factory, 60, 3)
    queue.claim(factory, "new", "cpu")
    assert queue.heartbeat(factory, job_id, "old") is True  # the old worker is told to stop
    assert queue.finish(factory, job_id, "old", "succeeded") is False  # and cannot write an outcome
    assert queue.heartbeat(factory, job_id, "new", 0.5, {"t": 1.0}) is False
    assert queue.finish(factory, job_id, "new", "succeeded", alc=0.5) is True
    with factory() as s:
        job = s.get(JobRow, job_id)
    assert job.status == "succeeded" and job.worker_id == "new" and job.curve == [{"t": 1.0}] and job.alc == 0.5


def test_cancel_queued_running_and_finished(factory):
    a, b = _enqueue(factory, 2)
    job, changed = queue.cancel(factory, a)
    assert changed and job.status == "cancelled"
    assert queue.cancel(factory, a)[1] is False
    queue.claim(factory, "w", "cpu")  # takes b (a is cancelled)
    job, changed = queue.cancel(factory, b)
    assert changed and job.status == "running" and job.cancel_requested
    assert queue.heartbeat(factory, b, "w") is True  # the worker sees the request at its next beat
    assert queue.cancel(factory, "job_missing") == (None, False)
    assert queue.counts_by_status(factory) == {"cancelled": 1, "running": 1}


def test_release_requeues_without_losing_the_job(factory):
    (job_id,) = _enqueue(factory, 1)
    queue.claim(factory, "w", "cpu")
    assert queue.release(factory, job_id, "w", "worker shut down")
    job = queue.claim(factory, "w2", "cpu")
    assert job.id == job_id and job.attempts == 2
    queue.cancel(factory, job_id)  # a cancel asked for while w2 runs it, then w2 shuts down: not requeued
    assert queue.release(factory, job_id, "w2", "worker shut down")
    assert queue.claim(factory, "w3", "cpu") is None
    assert queue.counts_by_status(factory) == {"cancelled": 1}


def test_a_database_of_another_schema_version_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    factory = session_factory(make_engine(url))
    with factory.begin() as s:
        s.get(MetaRow, "schema_version").value = "0"
    with pytest.raises(ArtifactError, match="schema version 0"):
        make_engine(url)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_api_and_workers_on_several_hosts_share_one_postgresql_queue(pg_url, tmp_path):
    """The API serves from PostgreSQL; two CPU workers as two "hosts" (separate processes, each with its own
    mount of the shared data root at another path and its own cache) run the CPU and any-device jobs; the CUDA
    job waits for a GPU worker; outputs come back to the API through the shared root."""
    from tests.fixtures.factories import make_image_folder
    from tests.fixtures.live import LiveServer, running_worker, service_env, wait_for

    with session_factory(make_engine(pg_url)).begin() as s:
        s.execute(update(JobRow).where(JobRow.status == "queued").values(status="cancelled"))
    shared = tmp_path / "shared"
    make_image_folder(shared / "ds", {"a": 6, "b": 6}, size=(16, 16))
    server = LiveServer(shared, service_env(shared, database_url=pg_url)).start()
    config = {"backbone": "lenet", "pretrained": "none", "input_size": 16, "head_width": 32, "batch_size": 8}
    hosts = []
    for name in ("host-b", "host-c"):
        (tmp_path / name).mkdir()
        os.symlink(shared, tmp_path / name / "mnt")  # the shared storage, mounted at another path
        hosts.append(service_env(tmp_path / name / "mnt", database_url=pg_url,
                                 cache_dir=tmp_path / name / "cache"))
    try:
        with server.client() as c:
            assert c.get("/readyz").json()["checks"]["database"] == "ok"
            r = c.post("/v1/datasets", json={"path": "ds"})
            assert r.status_code == 201, r.text
            ds = r.json()["id"]
            jobs = {needs: c.post("/v1/jobs", json={"dataset_id": ds, "configuration": config, "budget_s": 2,
                                                    "needs": needs, "priority": prio}).json()
                    for needs, prio in (("cuda", 100), ("cpu", 0), ("any", 5))}
            assert jobs["cpu"]["params"]["dataset_path"] == "ds" and jobs["cuda"]["needs"] == "cuda"
            with running_worker(tmp_path / "host-b", hosts[0]), running_worker(tmp_path / "host-c", hosts[1]):
                done = [wait_for(c, jobs[n]["id"], lambda j: j["status"] in ("succeeded", "failed"), 200)
                        for n in ("cpu", "any")]
                assert [d["status"] for d in done] == ["succeeded", "succeeded"], done
                assert all(d["device"] == "cpu" for d in done)
                waiting = c.get(f"/v1/jobs/{jobs['cuda']['id']}").json()
                assert waiting["status"] == "queued" and waiting["attempts"] == 0  # no CPU worker took it
            model = c.get(f"/v1/jobs/{jobs['any']['id']}/model")
            assert model.status_code == 200 and len(model.content) > 1000  # written on a "host", served by the API
            assert c.delete(f"/v1/jobs/{jobs['cuda']['id']}").json()["status"] == "cancelled"
    finally:
        server.stop()


def test_an_unreachable_database_is_waited_for_then_refused_clearly():
    """The API and workers retry their first connection for METAREC_DB_WAIT_S (a database container may still be
    starting), then fail with one line naming the database, never a traceback."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    start = time.monotonic()
    with pytest.raises(ArtifactError, match=rf"127.0.0.1:{port}/x is not reachable \(waited 1\.5 s"):
        make_engine(f"postgresql+psycopg2://u:secret@127.0.0.1:{port}/x", wait_s=1.5)
    assert 1.0 <= time.monotonic() - start < 10


def test_the_database_wait_ends_as_soon_as_the_server_answers(pg_url):
    import time

    start = time.monotonic()
    make_engine(pg_url, wait_s=30).dispose()
    assert time.monotonic() - start < 5


# ---- job kinds, device needs and priorities (issue 14 §3) -------------------------------------------------


def test_workers_claim_only_jobs_their_device_satisfies(factory):
    cuda = queue.enqueue(factory, "finetune", {}, needs="cuda").id
    cpu = queue.enqueue(factory, "finetune", {}, needs="cpu").id
    anywhere = queue.enqueue(factory, "finetune", {}, needs="any").id
    assert queue.claim(factory, "c", "cpu").id == cpu
    assert queue.claim(factory, "c", "cpu").id == anywhere
    assert queue.claim(factory, "c", "cpu") is None  # a CPU worker never takes the job that asked for a GPU
    assert queue.claim(factory, "g", "cuda:1").id == cuda
    gpu_only = queue.enqueue(factory, "finetune", {}, needs="cpu").id
    assert queue.claim(factory, "g", "cuda:0") is None  # nor a GPU worker one that asked for the CPU
    assert queue.claim(factory, "c", "cpu").id == gpu_only


def test_higher_priority_first_then_oldest(factory):
    low = queue.enqueue(factory, "finetune", {}, priority=-5).id
    first = queue.enqueue(factory, "finetune", {}).id
    second = queue.enqueue(factory, "finetune", {}).id
    urgent = queue.enqueue(factory, "rebuild", {}, priority=50).id
    assert [queue.claim(factory, "w", "cpu").id for _ in range(4)] == [urgent, first, second, low]


def test_workers_claim_only_kinds_they_run(factory):
    future = queue.enqueue(factory, "distill", {}, priority=99).id  # a kind a newer metarec adds
    rebuild = queue.enqueue(factory, "rebuild", {}).id
    finetune = queue.enqueue(factory, "finetune", {}).id
    assert queue.claim(factory, "w", "cpu", kinds=("finetune",)).id == finetune
    assert queue.claim(factory, "w", "cpu").id == rebuild  # default: the kinds this metarec runs
    assert queue.claim(factory, "w", "cpu") is None
    assert queue.claim(factory, "w", "cpu", kinds=("distill",)).id == future


def test_concurrent_cpu_and_gpu_workers_each_take_only_their_jobs(factory):
    needs = ["cpu", "cuda", "any"] * 8
    ids = {queue.enqueue(factory, "finetune", {}, needs=n).id: n for n in needs}
    taken: list[tuple[str, str]] = []
    lock = threading.Lock()

    def worker(device: str) -> None:
        while (job := queue.claim(factory, f"w-{device}-{threading.get_ident()}", device)) is not None:
            with lock:
                taken.append((job.id, device))

    threads = [threading.Thread(target=worker, args=(d,)) for d in ("cpu", "cpu", "cuda:0", "cuda:1")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(i for i, _ in taken) == sorted(ids)  # none twice, none lost
    for job_id, device in taken:
        assert ids[job_id] in queue.satisfies(device), (ids[job_id], device)


def test_a_version_1_database_is_migrated_and_keeps_its_queue(factory):
    engine = factory.kw["bind"]
    (job_id,) = _enqueue(factory, 1)
    with engine.begin() as conn:  # what metarec 0.1 with schema version 1 left behind
        conn.exec_driver_sql("ALTER TABLE jobs DROP COLUMN needs")
        conn.exec_driver_sql("ALTER TABLE jobs DROP COLUMN priority")
        conn.exec_driver_sql("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    migrated = session_factory(make_engine(str(engine.url.render_as_string(hide_password=False))))
    with migrated() as s:
        assert s.get(MetaRow, "schema_version").value == "2"
        job = s.get(JobRow, job_id)
    assert job.status == "queued" and job.needs == "any" and job.priority == 0
    assert queue.claim(migrated, "w", "cpu").id == job_id
    make_engine(str(engine.url.render_as_string(hide_password=False)))  # a second start: nothing to migrate


def test_a_database_from_a_newer_metarec_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    factory = session_factory(make_engine(url))
    with factory.begin() as s:
        s.get(MetaRow, "schema_version").value = "7"
    with pytest.raises(ArtifactError, match="schema version 7, this metarec uses 2; upgrade metarec"):
        make_engine(url)


def test_a_worker_refuses_kinds_it_cannot_run(tmp_path):
    from metafeatures.errors import ConfigError
    from service.settings import Settings
    from service.worker import Worker

    settings = Settings(data_root=tmp_path, database_url=f"sqlite:///{tmp_path / 'w.sqlite'}")
    assert Worker(settings, "cpu", kinds=("rebuild",)).kinds == ("rebuild",)
    assert Worker(settings, "cpu").kinds == ("finetune", "rebuild", "portfolio_update")
    with pytest.raises(ConfigError, match="'cell'"):
        Worker(settings, "cpu", kinds=("finetune", "cell"))


def test_cancelling_a_rebuild_job_stops_it_at_the_next_dataset_or_cell(tmp_path):
    """A real worker and the real rebuild entry point: a cancel request lands at the next stage boundary (here
    before the first dataset's BOHB run), the job ends `cancelled` with the stage named, and nothing ran."""
    from service.settings import Settings
    from service.worker import Worker
    from tests.fixtures.factories import make_image_folder

    for name in ("one", "two"):
        make_image_folder(tmp_path / "col" / name, {"a": 3, "b": 3}, size=(8, 8))
    settings = Settings(data_root=tmp_path, database_url=f"sqlite:///{tmp_path / 'w.sqlite'}", heartbeat_s=0.2)
    worker = Worker(settings, "cpu", worker_id="w")
    params = {"collection_path": "col", "datasets": None, "n_workers": 1,
              "scenario": {"n_iterations": 1, "min_budget": 1, "max_budget": 1, "backbones": ["lenet"]}}
    job_id = queue.enqueue(worker.factory, "rebuild", params).id
    job = queue.claim(worker.factory, "w", "cpu")
    queue.cancel(worker.factory, job_id)  # requested while it is starting
    worker.run_job(job)
    with worker.factory() as s:
        row = s.get(JobRow, job_id)
    assert row.status == "cancelled" and "stopped during: BOHB on one" in row.error, row.error
    assert not list((tmp_path / "jobs" / job_id).rglob("part-*"))  # no BOHB evaluation was started
