"""Room for selection: the gap oracle − single best, from a matrix, a store being written, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from finetune.config import FinetuneConfig
from metafeatures.errors import MetarecError
from portfolio.room import matrix_room, store_room
from portfolio.selection import FAILED_SCORE
from portfolio.store import Observation, ObservationStore


def test_gap_regret_and_wins_on_complete_columns_only() -> None:
    scores = np.array([[0.9, 0.5, 0.2, np.nan],
                       [0.6, 0.7, 0.4, 0.9],
                       [0.3, 0.1, 0.0, 0.1]])
    room = matrix_room(scores, ["a", "b", "c"], ["d1", "d2", "d3", "d4"])
    assert (room.n_datasets, room.n_incomplete) == (3, 1)  # d4 lacks a's cell
    assert room.single_best == "b"  # means 0.533 / 0.567 / 0.133 on d1..d3
    assert room.oracle_mean == pytest.approx((0.9 + 0.7 + 0.4) / 3)
    assert room.gap == pytest.approx((0.9 + 0.7 + 0.4) / 3 - (0.6 + 0.7 + 0.4) / 3)
    assert room.single_best_regret == pytest.approx(((0.9 - 0.6) / 0.6 + 0 + 0) / 3)
    assert room.wins == {"a": 1, "b": 2}
    assert not room.to_dict()["goals"]["met"] or room.gap >= 0.05


def test_one_candidate_best_everywhere_leaves_no_room() -> None:
    room = matrix_room(np.array([[0.8, 0.9], [0.5, 0.2]]), ["x", "y"], ["d1", "d2"])
    assert room.gap == 0.0 and room.single_best_regret == 0.0 and room.to_dict()["goals"]["met"] is False
    with pytest.raises(MetarecError, match="every candidate"):
        matrix_room(np.array([[np.nan], [0.5]]), ["x", "y"], ["d1"])


def _obs(dataset: str, backbone: str, alc: float | None) -> Observation:
    cfg = FinetuneConfig(backbone=backbone, pretrained="none")
    return Observation(dataset=dataset, dataset_hash=f"h-{dataset}", group=dataset, configuration=cfg.to_dict(),
                       budget=10.0, budget_kind="seconds", seed=0, source="matrix",
                       status="completed" if alc is not None else "failed",
                       curve=((1.0, alc or 0.0, 0.5),) if alc is not None else (), alc=alc, final_nauc=alc,
                       final_accuracy=0.5 if alc is not None else None, time_budget=1200.0, t0=60.0, wall_time=10.0,
                       device="cpu", error="" if alc is not None else "boom")


def test_store_room_reads_complete_columns_and_counts_failures_as_the_evaluation_does(tmp_path: Path) -> None:
    store = ObservationStore(tmp_path / "obs.sqlite")
    for o in (_obs("d1", "lenet", 0.6), _obs("d1", "resnet18", 0.2), _obs("d2", "lenet", 0.1),
              _obs("d2", "resnet18", None), _obs("d3", "lenet", 0.5)):  # d3 is still being built
        store.add(o)
    room = store_room(store, 10.0, "seconds", 1200.0, 60.0)
    assert (room.n_candidates, room.n_datasets, room.n_incomplete) == (2, 2, 1)
    assert room.oracle_mean == pytest.approx((0.6 + 0.1) / 2)
    assert room.single_best_mean == pytest.approx((0.6 + 0.1) / 2)  # lenet; the failure scored FAILED_SCORE
    assert FAILED_SCORE < 0
    with pytest.raises(MetarecError, match="no bohb rows"):
        store_room(store, 10.0, "seconds", 1200.0, 60.0, source="bohb")


def test_cli_reports_the_shipped_portfolio_and_refuses_a_missing_store(tmp_path: Path, capsys) -> None:
    from metarec.cli import main

    assert main(["portfolio", "room", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"gap", "single_best_regret", "single_best", "wins", "goals", "n_datasets"} <= set(data)
    assert data["n_datasets"] >= 8 and 0 <= data["single_best_regret"] <= 1 and data["gap"] >= 0
    assert main(["portfolio", "room", "--store", str(tmp_path / "none.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "is not a file" in err and "Traceback" not in err
