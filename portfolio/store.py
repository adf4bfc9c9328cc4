"""The observation store: one row per evaluated (dataset, configuration, budget, seed), in one SQLite table.

This is the meta-dataset. BOHB trials, matrix and candidate cells (and later the service's jobs) append
rows; the rebuild reads them back instead of training again (resume), and the performance data a
portfolio needs is a *view* of the rows (:func:`performance_view`). SQLite, not Parquet: rows arrive one
at a time from several processes (BOHB workers, parallel cells) and must survive a kill mid-build;
SQLite gives atomic appends from concurrent writers with no extra dependency, and
``pandas.read_sql_query("select * from observations", sqlite3.connect(path))`` opens it as one table.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from finetune.config import FinetuneConfig
from metafeatures.errors import ArtifactError, ConfigError
from portfolio.performance import mean_curve

STORE_FORMAT_VERSION = 2  # 2 added the ``provenance`` column; a format-1 file is read and appended as it is
READABLE_VERSIONS = (1, 2)  # a format-1 file is upgraded in place by the first row that carries provenance
TABLE = "observations"
SOURCES = ("bohb", "matrix", "candidate", "job")
MAX_PROVENANCE = 200
CurvePoints = tuple[tuple[float, float, float], ...]  # (t seconds, NAUC, accuracy)


def config_id(config: FinetuneConfig | Mapping[str, Any]) -> str:
    """A configuration's identity without its seed: two seeds of one configuration share the id."""
    cfg = config if isinstance(config, FinetuneConfig) else FinetuneConfig.from_dict(config)
    return cfg.replace(seed=0).digest()


def _metarec_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("metarec")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without an install
        return "unknown"


@dataclass(frozen=True)
class Observation:
    """One evaluation: where (dataset + hash + group), what (configuration, budget, seed), and how it went."""

    dataset: str
    dataset_hash: str
    group: str
    configuration: dict[str, Any]
    budget: float
    budget_kind: str
    seed: int
    source: str
    status: str
    curve: CurvePoints
    alc: float | None
    final_nauc: float | None
    final_accuracy: float | None
    time_budget: float
    t0: float
    wall_time: float
    device: str
    error: str = ""
    metarec_version: str = ""
    created_at: str = ""
    config_id: str = ""
    provenance: str = ""  # who produced the row beyond its source, e.g. ``job:job_…`` for a served job

    def __post_init__(self) -> None:
        if len(self.provenance) > MAX_PROVENANCE:
            raise ConfigError("provenance", self.provenance[:40] + "…", f"must be at most {MAX_PROVENANCE} characters")
        if self.source not in SOURCES:
            raise ConfigError("source", self.source, f"must be one of {SOURCES}")
        if self.budget_kind not in ("epochs", "seconds"):
            raise ConfigError("budget_kind", self.budget_kind, "must be epochs or seconds")
        if not (math.isfinite(self.budget) and self.budget > 0):
            raise ConfigError("budget", self.budget, "must be positive")
        object.__setattr__(self, "config_id", self.config_id or config_id(self.configuration))
        object.__setattr__(self, "metarec_version", self.metarec_version or _metarec_version())
        object.__setattr__(self, "created_at", self.created_at or _dt.datetime.now(_dt.timezone.utc).isoformat())

    @property
    def ok(self) -> bool:
        """The run completed and has scores."""
        return self.status == "completed" and self.alc is not None

    def score(self, name: str = "alc") -> float | None:
        """The named final score (``alc`` or ``final_nauc``), None when the run failed."""
        return (self.alc if name == "alc" else self.final_nauc) if self.ok else None

    @classmethod
    def from_result(cls, result: Any, *, dataset: str, dataset_hash: str, group: str, budget: float,
                    budget_kind: str, source: str, provenance: str = "") -> Observation:
        """From a ``finetune.result.FinetuneResult``."""
        curve = tuple((round(p.t, 4), round(p.nauc, 6), round(p.accuracy, 6)) for p in result.learning_curve)
        done = result.status == "completed"
        return cls(dataset=dataset, dataset_hash=dataset_hash, group=group, configuration=dict(result.config),
                   budget=float(budget), budget_kind=budget_kind, seed=int(result.config.get("seed", 0)),
                   source=source, status=result.status, curve=curve, alc=float(result.alc) if done else None,
                   final_nauc=float(result.final_nauc) if done else None,
                   final_accuracy=float(result.final_accuracy) if done else None,
                   time_budget=float(result.time_budget), t0=float(result.t0), wall_time=float(result.wall_time),
                   device=result.device, error="" if done else (result.reason or result.status),
                   provenance=provenance)

    @classmethod
    def failure(cls, *, dataset: str, dataset_hash: str, group: str, configuration: Mapping[str, Any],
                budget: float, budget_kind: str, source: str, error: str, time_budget: float, t0: float,
                wall_time: float = 0.0) -> Observation:
        """A run that raised before producing a result (bad configuration for this dataset, missing weights)."""
        return cls(dataset=dataset, dataset_hash=dataset_hash, group=group, configuration=dict(configuration),
                   budget=float(budget), budget_kind=budget_kind, seed=int(configuration.get("seed", 0)),
                   source=source, status="failed", curve=(), alc=None, final_nauc=None, final_accuracy=None,
                   time_budget=time_budget, t0=t0, wall_time=wall_time, device="", error=error[:2000])


_COLUMNS = [f.name for f in fields(Observation)]
_V1_COLUMNS = [c for c in _COLUMNS if c != "provenance"]  # a format-1 file has every column but provenance
_KEY = ("dataset_hash", "config_id", "budget", "budget_kind", "seed", "time_budget", "t0")
_SQL_TYPES = {"budget": "REAL", "seed": "INTEGER", "alc": "REAL", "final_nauc": "REAL", "final_accuracy": "REAL",
              "time_budget": "REAL", "t0": "REAL", "wall_time": "REAL", "provenance": "TEXT NOT NULL DEFAULT ''"}


def _quoted(columns: Sequence[str]) -> str:
    """Column names for SQL (``group`` is an SQL keyword)."""
    return ", ".join(f'"{c}"' for c in columns)


class ObservationStore:
    """An append-only SQLite file of observations; a second write of the same key keeps the first.

    Format 2 added the ``provenance`` column. A format-1 file (written by an older metarec, e.g. a build still
    running) is read and appended as it is, so older code can go on writing it; the first row that carries
    provenance upgrades it in place (one transaction: the column, then the version). Other versions are refused.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            con.execute("INSERT OR IGNORE INTO meta VALUES ('format_version', ?)", (str(STORE_FORMAT_VERSION),))
            version = self._version(con)
            columns = _COLUMNS if version == STORE_FORMAT_VERSION else _V1_COLUMNS
            cols = ", ".join(f'"{c}" {_SQL_TYPES.get(c, "TEXT")}' for c in columns)
            con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, {cols}, "
                        f"UNIQUE ({', '.join(_KEY)}))")
            con.execute(f"CREATE INDEX IF NOT EXISTS by_dataset ON {TABLE} (dataset_hash, config_id)")

    def _version(self, con: sqlite3.Connection) -> int:
        """The file's format version; ArtifactError for one this metarec cannot read."""
        found = con.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()[0]
        if found not in {str(v) for v in READABLE_VERSIONS}:
            raise ArtifactError(f"{self.path}: observation store format version {found} is not supported "
                                f"(this metarec reads {', '.join(map(str, READABLE_VERSIONS))}; a newer metarec "
                                "wrote it, upgrade metarec)")
        return int(found)

    @property
    def format_version(self) -> int:
        """The file's current format version (1 until a row with provenance upgraded it)."""
        with self._connect() as con:
            return self._version(con)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One short transaction; WAL lets readers and several writer processes share the file."""
        try:
            con = sqlite3.connect(self.path, timeout=120)
        except sqlite3.Error as exc:
            raise ArtifactError(f"{self.path}: cannot open the observation store ({exc})") from exc
        with closing(con):
            try:
                con.execute("PRAGMA journal_mode=WAL")
                with con:
                    yield con
            except sqlite3.DatabaseError as exc:
                raise ArtifactError(f"{self.path}: not a usable observation store ({exc})") from exc

    def _upgrade(self, con: sqlite3.Connection) -> None:
        """Format 1 → 2 in place, inside the caller's (immediate) transaction: add ``provenance``."""
        con.execute(f'ALTER TABLE {TABLE} ADD COLUMN "provenance" {_SQL_TYPES["provenance"]}')
        con.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (str(STORE_FORMAT_VERSION),))

    def add(self, obs: Observation) -> bool:
        """Append one observation; False when its key (dataset, configuration, budget, seed, T, t0) is there."""
        return self.add_many([obs]) == 1

    def add_many(self, observations: Sequence[Observation]) -> int:
        """Append observations in one transaction; returns how many were new (a stored key keeps its row)."""
        if not observations:
            return 0
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")  # the version check, an upgrade and the rows are one transaction
            version = self._version(con)
            if version == 1 and any(o.provenance for o in observations):
                self._upgrade(con)
                version = STORE_FORMAT_VERSION
            columns = _COLUMNS if version == STORE_FORMAT_VERSION else _V1_COLUMNS
            sql = (f"INSERT OR IGNORE INTO {TABLE} ({_quoted(columns)}) "
                   f"VALUES ({', '.join('?' for _ in columns)})")
            added = 0
            for obs in observations:
                row = asdict(obs)
                row["configuration"] = json.dumps(obs.configuration, sort_keys=True)
                row["curve"] = json.dumps([list(p) for p in obs.curve])
                added += con.execute(sql, [row[c] for c in columns]).rowcount
            return added

    def import_from(self, other: ObservationStore) -> int:
        """Copy every row of ``other`` that this store lacks (by key); returns how many were new. The other
        file is only read (e.g. the store committed beside a read-only packaged portfolio)."""
        return self.add_many(other.observations())

    def get(self, dataset_hash: str, config: FinetuneConfig | Mapping[str, Any] | str, budget: float,
            budget_kind: str, seed: int, time_budget: float, t0: float) -> Observation | None:
        """The stored observation for one key, or None (``config`` may be a config id)."""
        cid = config if isinstance(config, str) else config_id(config)
        rows = self._select(" WHERE dataset_hash = ? AND config_id = ? AND budget = ? AND budget_kind = ? "
                            "AND seed = ? AND time_budget = ? AND t0 = ?",
                            (dataset_hash, cid, float(budget), budget_kind, int(seed), float(time_budget), float(t0)))
        return rows[0] if rows else None

    def observations(self, dataset_hashes: Sequence[str] | None = None, source: str | None = None,
                     ) -> list[Observation]:
        """All rows (optionally of some datasets or one source), oldest first."""
        where, args = [], []
        if dataset_hashes is not None:
            where.append(f"dataset_hash IN ({', '.join('?' for _ in dataset_hashes)})")
            args += list(dataset_hashes)
        if source is not None:
            where.append("source = ?")
            args.append(source)
        return self._select((" WHERE " + " AND ".join(where)) if where else "", tuple(args))

    def __len__(self) -> int:
        with self._connect() as con:
            return int(con.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])

    def _select(self, where: str, args: tuple) -> list[Observation]:
        with self._connect() as con:
            columns = _COLUMNS if self._version(con) == STORE_FORMAT_VERSION else _V1_COLUMNS
            rows = con.execute(f"SELECT {_quoted(columns)} FROM {TABLE}{where} ORDER BY id", args).fetchall()
        out = []
        for row in rows:
            data = dict(zip(columns, row, strict=True))
            data["configuration"] = json.loads(data["configuration"])
            data["curve"] = tuple(tuple(p) for p in json.loads(data["curve"]))
            out.append(Observation(**data))
        return out


# ------------------------------------------------------------------------------------------------ views


@dataclass(frozen=True)
class PerformanceView:
    """Candidates × datasets: each cell's learning curve [(t, nauc), ...] and final score (mean over
    seeds, the curve the mean of the seeds' step curves; NaN and an empty curve where nothing completed).
    What the selection layer consumes."""

    candidates: tuple[str, ...]
    datasets: tuple[str, ...]
    scores: np.ndarray
    curves: tuple[tuple[tuple[tuple[float, float], ...], ...], ...]
    n_seeds: np.ndarray
    missing: tuple[tuple[str, str], ...]

    def curve(self, candidate: str, dataset: str) -> tuple[tuple[float, float], ...]:
        """The learning curve of one cell."""
        return self.curves[self.candidates.index(candidate)][self.datasets.index(dataset)]


def performance_view(store: ObservationStore, candidates: Sequence[str], datasets: Mapping[str, str],
                     budget: float, budget_kind: str, time_budget: float, t0: float, score: str = "alc",
                     ) -> PerformanceView:
    """The rectangular view of ``candidates`` (config ids) × ``datasets`` ({name: content hash}) at one
    budget: scores are the mean ``score`` over the stored seeds, curves the mean of their curves; cells with
    no completed run are listed in ``missing`` (a failed run scores NaN, it is not missing)."""
    names = tuple(datasets)
    rows = store.observations(dataset_hashes=list(datasets.values()))
    by_cell: dict[tuple[str, str], list[Observation]] = {}
    for o in rows:
        if o.budget == float(budget) and o.budget_kind == budget_kind and o.time_budget == float(time_budget) \
                and o.t0 == float(t0):
            by_cell.setdefault((o.config_id, o.dataset_hash), []).append(o)
    scores = np.full((len(candidates), len(names)), np.nan)
    n_seeds = np.zeros((len(candidates), len(names)), dtype=np.int64)
    curves: list[tuple[tuple[tuple[float, float], ...], ...]] = []
    missing: list[tuple[str, str]] = []
    for i, cid in enumerate(candidates):
        row_curves: list[tuple[tuple[float, float], ...]] = []
        for j, name in enumerate(names):
            obs = sorted(by_cell.get((cid, datasets[name]), []), key=lambda o: o.seed)
            values = [v for v in (o.score(score) for o in obs) if v is not None]
            n_seeds[i, j] = len(obs)
            if not obs:
                missing.append((cid, name))
            if values:
                scores[i, j] = float(np.mean(values))
            done = [[(t, n) for t, n, _ in o.curve] for o in obs if o.ok and o.curve]
            row_curves.append(tuple(mean_curve(done)) if done else ())
        curves.append(tuple(row_curves))
    return PerformanceView(candidates=tuple(candidates), datasets=names, scores=scores, curves=tuple(curves),
                           n_seeds=n_seeds, missing=tuple(missing))


def seed_noise(store: ObservationStore, score: str = "alc", source: str | None = None) -> dict[str, Any]:
    """How much a cell's score moves with the seed: over every (dataset, configuration, budget) with two or
    more completed seeds, the absolute difference between the first two seeds' scores."""
    cells: dict[tuple, list[tuple[int, float]]] = {}
    for o in store.observations(source=source):
        value = o.score(score)
        if value is not None:
            cells.setdefault((o.dataset_hash, o.config_id, o.budget, o.budget_kind, o.time_budget, o.t0),
                             []).append((o.seed, value))
    diffs = [abs(v[0][1] - v[1][1]) for v in (sorted(s) for s in cells.values()) if len(v) >= 2]
    stats: dict[str, Any] = {"cells": len(cells), "cells_with_two_seeds": len(diffs)}
    if diffs:
        a = np.asarray(diffs)
        stats.update({"mean_abs_diff": float(a.mean()), "median_abs_diff": float(np.median(a)),
                      "p90_abs_diff": float(np.quantile(a, 0.9)), "max_abs_diff": float(a.max()),
                      "seed_std": float(a.mean() * math.sqrt(math.pi) / 2)})
    return stats


__all__ = ["READABLE_VERSIONS", "STORE_FORMAT_VERSION", "Observation", "ObservationStore", "PerformanceView",
           "config_id", "performance_view", "seed_noise"]
