"""The service learns from its own jobs: a finished fine-tune becomes one row of the observation store.

A succeeded job, or a cancelled one whose learning curve has at least two points, is appended to the
service's store (``Settings.store_path``) with ``source="job"`` and ``provenance="job:<id>"``: the dataset's
content hash and group, the configuration, budget, seed, curve, scores and device. The dataset's fingerprint
(under the served portfolio's spec) is written beside it, under the data root, keyed by content hash and spec,
because the store has no column for it. ``POST /v1/portfolio/update`` turns these datasets into known ones.

A cancelled run is stored with the budget it actually trained (its wall time, not the requested budget), so it
can never take the key of a complete run at the requested budget: the store keeps the first row of a key.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker

from portfolio.store import Observation, ObservationStore
from service.db import DatasetRow, JobRow
from service.settings import Settings

log = logging.getLogger("metarec.worker")
MIN_CURVE_POINTS = 2  # a cancelled job with fewer points says nothing about the configuration


def usable(result: Any) -> bool:
    """Whether a fine-tune result is worth an observation: completed, or cancelled with a curve of ≥ 2 points."""
    if result.status == "completed":
        return True
    return result.status == "cancelled" and len(result.learning_curve) >= MIN_CURVE_POINTS


def job_observation(job: JobRow, row: DatasetRow, params: dict[str, Any], result: Any) -> Observation:
    """The observation of one finished fine-tuning job on the registered dataset ``row``."""
    group = str((row.summary or {}).get("group") or row.name)
    completed = result.status == "completed"
    budget = float(params["budget_s"]) if completed else round(max(float(result.wall_time), 1e-3), 3)
    return Observation.from_result(result, dataset=row.name, dataset_hash=row.content_hash, group=group,
                                   budget=budget, budget_kind="seconds", source="job", provenance=f"job:{job.id}")


def fingerprint_file(settings: Settings, content_hash: str, spec_key: str) -> Path:
    """Where a dataset's fingerprint under one spec is kept: ``<root>/fingerprints/<hash>-<spec>.npz``."""
    return settings.fingerprints_dir / f"{content_hash[:32]}-{spec_key[:16]}.npz"


def save_fingerprint(settings: Settings, factory: sessionmaker, row: DatasetRow, device: str) -> Path:
    """Fingerprint the dataset under the served portfolio's spec (once per hash and spec) and save the file."""
    from metafeatures.datasets import open_dataset
    from portfolio.artifact import load_portfolio
    from portfolio.fingerprinting import fingerprinter_for
    from service.portfolio_state import published_portfolio

    directory = published_portfolio(factory, settings.root) or settings.resolved_portfolio_dir()
    loaded = load_portfolio(directory)
    path = fingerprint_file(settings, row.content_hash, loaded.fingerprint_spec.key())
    if path.is_file():
        return path
    fingerprinter = fingerprinter_for(loaded, device=device, threads=1,
                                      how_to_pass="set the portfolio's weights file")
    fp = fingerprinter.fingerprint(open_dataset(row.path, name=row.name), row.content_hash,
                                   n_samples=settings.fingerprint_samples, seed=0, use_cache=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fp.save(path)
    return path


def record_job(settings: Settings, factory: sessionmaker, job: JobRow, params: dict[str, Any], result: Any,
               device: str) -> dict[str, Any]:
    """Append the job's observation (and its dataset's fingerprint file); what happened, for the job's result.

    Never raises: the fine-tune itself succeeded, so a store that cannot be written is reported in the job's
    result (``observation.error``) and logged, not turned into a failed job."""
    if not usable(result):
        return {"stored": False, "reason": f"{result.status} with {len(result.learning_curve)} curve point(s)"}
    with factory() as session:
        row = session.get(DatasetRow, job.dataset_id) if job.dataset_id else None
    if row is None:
        return {"stored": False, "reason": "the job names no registered dataset"}
    out: dict[str, Any] = {"store": _shown(settings.store_path, settings.root)}
    try:
        out["stored"] = True
        out["added"] = ObservationStore(settings.store_path).add(job_observation(job, row, params, result))
    except Exception as exc:  # the run is done; say why it was not recorded instead of failing the job
        log.error("job %s: observation not stored: %s", job.id, exc)
        return {**out, "stored": False, "error": f"{type(exc).__name__}: {exc}"}
    try:
        out["fingerprint"] = _shown(save_fingerprint(settings, factory, row, device), settings.root)
    except Exception as exc:  # the observation is kept; the update fingerprints the dataset itself anyway
        log.warning("job %s: fingerprint not saved: %s", job.id, exc)
        out["fingerprint_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _shown(path: Path, root: Path) -> str:
    """A path relative to the data root when inside it."""
    resolved = path.resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)


def job_datasets(settings: Settings, factory: sessionmaker, known_hashes: set[str]) -> list[DatasetRow]:
    """Registered datasets with job observations in the service's store whose content the portfolio does not
    know (the oldest registration of each content hash)."""
    from sqlalchemy import select

    observed = {o.dataset_hash for o in ObservationStore(settings.store_path).observations(source="job")}
    wanted = sorted(observed - known_hashes)
    if not wanted:
        return []
    with factory() as session:
        rows = session.scalars(select(DatasetRow).where(DatasetRow.content_hash.in_(wanted))
                               .order_by(DatasetRow.created_at, DatasetRow.id)).all()
    first: dict[str, DatasetRow] = {}
    for row in rows:
        first.setdefault(row.content_hash, row)
    return list(first.values())


def added_datasets(factory: sessionmaker, dataset_ids: list[str], known_names: list[str]) -> dict[str, str]:
    """{unique name: path} of the registered datasets ``dataset_ids`` (a name the portfolio or an earlier one
    of them holds gets its content hash appended); ArtifactError if one was deleted meanwhile."""
    from metafeatures.errors import ArtifactError

    taken = set(known_names)
    out: dict[str, str] = {}
    with factory() as session:
        for dataset_id in dataset_ids:
            row = session.get(DatasetRow, dataset_id)
            if row is None:
                raise ArtifactError(f"registered dataset {dataset_id} no longer exists")
            name = row.name if row.name not in taken else f"{row.name}-{row.content_hash[:8]}"
            taken.add(name)
            out[name] = row.path
    return out


def registered_known(factory: sessionmaker, known: dict[str, str]) -> dict[str, DatasetRow]:
    """{known dataset name: its registration} for the portfolio's known datasets that are registered (by content
    hash): an earlier update added them from here, so the next update finds them here too."""
    from sqlalchemy import select

    by_hash = {h: n for n, h in known.items()}
    with factory() as session:
        rows = session.scalars(select(DatasetRow).where(DatasetRow.content_hash.in_(list(by_hash)))
                               .order_by(DatasetRow.created_at, DatasetRow.id)).all()
    out: dict[str, DatasetRow] = {}
    for row in rows:
        out.setdefault(by_hash[row.content_hash], row)
    return out
