"""The BOHB objective: fine-tune a sampled configuration on one dataset; loss = −score.

Runs inside BOHB worker processes (named ``offline_search.objective:finetune_objective``) and for matrix
and candidate cells. A failure or a diverged loss is reported as the worst loss with the reason; it never
crashes the search. With a ``store`` every evaluation becomes one row of the observation store, and an
evaluation already in the store is read back instead of trained again (the resume).
"""

from __future__ import annotations

from typing import Any

from finetune.config import FinetuneConfig
from finetune.trainer import TrainOptions, finetune
from portfolio.store import Observation, ObservationStore

WORST_LOSS = 1.0  # scores (NAUC, ALC) lie in [-1, 1]; loss = -score, so +1 is the worst possible


def finetune_objective(config: dict[str, Any], budget: float, dataset: str, budget_kind: str = "epochs",
                       score: str = "alc", base: dict[str, Any] | None = None, time_budget: float = 1200.0,
                       t0: float = 60.0, test_fraction: float = 0.2, store: str | None = None,
                       dataset_name: str | None = None, dataset_hash: str | None = None, group: str | None = None,
                       source: str = "bohb") -> dict[str, Any]:
    """Train ``config`` on ``dataset`` for ``budget`` epochs or seconds and report −score with the details."""
    cfg = FinetuneConfig.from_configspace(config, base=base)
    where = _Where(store, dataset_name, dataset_hash, group, dataset) if store else None
    if where is not None:
        known = where.store.get(where.hash, cfg, budget, budget_kind, cfg.seed, time_budget, t0)
        if known is not None:
            return _report(known, score, cached=True)
    options = TrainOptions(epochs=budget if budget_kind == "epochs" else None,
                           budget_s=budget if budget_kind == "seconds" else None,
                           time_budget=time_budget, t0=t0, test_fraction=test_fraction, save_checkpoint=False)
    try:
        result = finetune(cfg, dataset, options)
    except Exception as exc:
        if where is not None:  # a configuration that cannot run here is an observation too (not retried)
            where.store.add(Observation.failure(
                dataset=where.name, dataset_hash=where.hash, group=where.group, configuration=cfg.to_dict(),
                budget=budget, budget_kind=budget_kind, source=source, error=f"{type(exc).__name__}: {exc}",
                time_budget=time_budget, t0=t0))
        raise
    info = {"alc": result.alc, "final_nauc": result.final_nauc, "final_accuracy": result.final_accuracy,
            "return_time": result.return_time, "wall_time": result.wall_time, "steps": result.steps,
            "status": result.status, "device": result.device,
            "budget_s": result.budget_s if result.budget_s is not None else result.wall_time,
            "curve": [[round(pt.t, 4), round(pt.nauc, 6)] for pt in result.learning_curve],
            "time_budget": time_budget, "t0": t0}
    if where is not None:
        where.store.add(Observation.from_result(result, dataset=where.name, dataset_hash=where.hash,
                                                group=where.group, budget=budget, budget_kind=budget_kind,
                                                source=source))
    if result.status != "completed":
        return {"loss": WORST_LOSS, "info": {**info, "error": result.reason or result.status}}
    value = result.alc if score == "alc" else result.final_nauc
    return {"loss": -float(value), "info": info}


class _Where:
    """The store and the dataset's identity in it (hash and group computed once when not given)."""

    def __init__(self, store: str, name: str | None, dataset_hash: str | None, group: str | None,
                 path: str) -> None:
        from pathlib import Path

        self.store = ObservationStore(store)
        self.name = name or Path(path).stem
        if dataset_hash is None:
            from metafeatures.datasets import open_dataset
            from metafeatures.summary import content_hash

            dataset_hash = content_hash(open_dataset(path))
        self.hash = dataset_hash
        self.group = group or self.name


def _report(obs: Observation, score: str, cached: bool) -> dict[str, Any]:
    """The objective's answer from a stored observation."""
    info: dict[str, Any] = {"alc": obs.alc, "final_nauc": obs.final_nauc, "final_accuracy": obs.final_accuracy,
                            "wall_time": obs.wall_time, "status": obs.status, "device": obs.device,
                            "budget_s": obs.budget if obs.budget_kind == "seconds" else obs.wall_time,
                            "curve": [[t, n] for t, n, _ in obs.curve], "time_budget": obs.time_budget,
                            "t0": obs.t0, "cached": cached}
    value = obs.score(score)
    if value is None:
        return {"loss": WORST_LOSS, "info": {**info, "error": obs.error or obs.status}}
    return {"loss": -float(value), "info": info}


def observe_cell(config: dict[str, Any], budget: float, dataset: str, *, dataset_name: str, dataset_hash: str,
                 group: str, budget_kind: str = "epochs", base: dict[str, Any] | None = None,
                 time_budget: float = 1200.0, t0: float = 60.0, test_fraction: float = 0.2,
                 source: str = "matrix") -> Observation:
    """One cell as an observation, without touching a store (a remote Ray task runs this; the driver, which
    owns the store, appends the row). A run that raises is a ``failed`` observation with the reason."""
    cfg = FinetuneConfig.from_configspace(config, base=base)
    options = TrainOptions(epochs=budget if budget_kind == "epochs" else None,
                           budget_s=budget if budget_kind == "seconds" else None,
                           time_budget=time_budget, t0=t0, test_fraction=test_fraction, save_checkpoint=False)
    try:
        result = finetune(cfg, dataset, options)
    except Exception as exc:  # noqa: BLE001 - recorded as a failed observation
        return Observation.failure(dataset=dataset_name, dataset_hash=dataset_hash, group=group,
                                   configuration=cfg.to_dict(), budget=budget, budget_kind=budget_kind, source=source,
                                   error=f"{type(exc).__name__}: {exc}", time_budget=time_budget, t0=t0)
    return Observation.from_result(result, dataset=dataset_name, dataset_hash=dataset_hash, group=group,
                                   budget=budget, budget_kind=budget_kind, source=source)
