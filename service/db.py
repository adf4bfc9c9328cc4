"""Database tables (datasets, recommendations, jobs) and engine setup; SQLite by default, PostgreSQL works too."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

log = logging.getLogger("metarec.service")
SCHEMA_VERSION = 2  # 2: jobs.needs and jobs.priority (a version-1 database is migrated in place)
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
# what this metarec's workers run; a worker claims only kinds it knows
JOB_KINDS = ("finetune", "rebuild", "portfolio_update")
JOB_NEEDS = ("any", "cpu", "cuda")  # the device a job asks for; a worker claims only jobs its device satisfies


def utcnow() -> dt.datetime:
    """Timezone-aware now (stored as UTC)."""
    return dt.datetime.now(dt.timezone.utc)


def new_id(prefix: str) -> str:
    """A random, URL-safe identifier with a readable prefix (``ds_…``, ``rec_…``, ``job_…``)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class Base(DeclarativeBase):
    """Declarative base; the JSON columns hold pydantic dumps."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class DatasetRow(Base):
    """A registered dataset: where it lives under the data root and its summary with the validation report."""

    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))  # "path" | "upload"
    path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RecommendationRow(Base):
    """A recommendation as answered, so a job can refer to it by id."""

    __tablename__ = "recommendations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"), nullable=True)
    matcher: Mapped[str] = mapped_column(String(40))
    portfolio_version: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobRow(Base):
    """A fine-tuning or rebuild job: queued by the API, claimed and run by a ``metarec worker``."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="finetune")
    needs: Mapped[str] = mapped_column(String(10), default="any", server_default="any")
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"), nullable=True)
    recommendation_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    curve: Mapped[list[Any]] = mapped_column(JSON, default=list)
    alc: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    device: Mapped[str | None] = mapped_column(String(40), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class MetaRow(Base):
    """Key/value facts about the database itself (schema version)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets the API read while a worker writes; busy_timeout waits instead of failing on a lock.

    Autocommit mode at the driver level, so the queue can issue its own ``BEGIN IMMEDIATE``.
    """
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    """Start every SQLite transaction as IMMEDIATE: the write lock is taken up front, so claims are atomic."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def wait_for_database(engine: Engine, wait_s: float) -> None:
    """Connect, retrying for up to ``wait_s`` seconds (a database container may still be starting); then a clear
    error naming the host, never a traceback."""
    from sqlalchemy.exc import OperationalError

    deadline = time.monotonic() + wait_s
    delay = 0.2
    while True:
        try:
            with engine.connect():
                return
        except OperationalError as exc:
            if time.monotonic() + delay > deadline:
                from metafeatures.errors import ArtifactError

                where = engine.url.render_as_string(hide_password=True)
                raise ArtifactError(f"database {where} is not reachable (waited {wait_s:g} s, "
                                    f"METAREC_DB_WAIT_S): {str(exc.orig).strip().splitlines()[0]}") from None
            log.info("database not reachable yet, retrying in %.1f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def make_engine(url: str, wait_s: float = 0.0) -> Engine:
    """Create the engine and the tables (waiting up to ``wait_s`` for the server); refuse a database written by an
    incompatible schema version."""
    from sqlalchemy import select

    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    wait_for_database(engine, wait_s)
    version = _stored_version(engine)
    if version is not None and version != SCHEMA_VERSION and version not in MIGRATIONS:
        from metafeatures.errors import ArtifactError

        newer = version > SCHEMA_VERSION
        raise ArtifactError(f"database {engine.url.render_as_string(hide_password=True)!r} has schema version "
                            f"{version}, this metarec uses {SCHEMA_VERSION}"
                            + ("; upgrade metarec" if newer else "; point METAREC_DATABASE_URL at a new database"))
    Base.metadata.create_all(engine)
    while version is not None and version != SCHEMA_VERSION:
        version = MIGRATIONS[version](engine)
        log.warning("database migrated to schema version %d", version)
    factory = sessionmaker(engine)
    with factory.begin() as session:
        row = session.scalars(select(MetaRow).where(MetaRow.key == "schema_version")).first()
        if row is None:
            session.add(MetaRow(key="schema_version", value=str(SCHEMA_VERSION)))
    return engine


def _stored_version(engine: Engine) -> int | None:
    """The schema version recorded in ``meta`` (None for a new, empty database)."""
    from sqlalchemy import inspect, text

    if not inspect(engine).has_table("meta"):
        return None
    with engine.connect() as conn:
        value = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar()
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return -1


def _migrate_1_to_2(engine: Engine) -> int:
    """Version 1 → 2: every job gets ``needs = 'any'`` and ``priority = 0``; queued jobs stay queued.

    The version is re-read under a lock (SQLite: the transaction is ``BEGIN IMMEDIATE``; PostgreSQL: ``FOR
    UPDATE``), so an API and a worker starting together migrate once."""
    lock = " FOR UPDATE" if engine.dialect.name == "postgresql" else ""
    with engine.begin() as conn:
        current = conn.exec_driver_sql(f"SELECT value FROM meta WHERE key = 'schema_version'{lock}").scalar()
        if current != "1":
            return int(current or SCHEMA_VERSION)
        conn.exec_driver_sql("ALTER TABLE jobs ADD COLUMN needs VARCHAR(10) NOT NULL DEFAULT 'any'")
        conn.exec_driver_sql("ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
        conn.exec_driver_sql("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    return 2


MIGRATIONS = {1: _migrate_1_to_2}  # from version → function that migrates one step and returns the new version


def session_factory(engine: Engine) -> sessionmaker:
    """Sessions that keep loaded attributes after commit (rows are handed to response models)."""
    return sessionmaker(engine, expire_on_commit=False)
