"""The observation store: round trip, one row per key, the candidates × datasets view, seed noise, resume."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from finetune.config import FinetuneConfig
from metafeatures.errors import ArtifactError, ConfigError
from portfolio.store import Observation, ObservationStore, config_id, performance_view, seed_noise


def _obs(dataset: str = "a", config: FinetuneConfig | None = None, seed: int = 0, alc: float | None = 0.5,
         budget: float = 2.0, status: str = "completed") -> Observation:
    cfg = (config or FinetuneConfig(backbone="lenet", pretrained="none")).replace(seed=seed)
    return Observation(dataset=dataset, dataset_hash=f"hash-{dataset}", group=dataset.split("__")[0],
                       configuration=cfg.to_dict(), budget=budget, budget_kind="seconds", seed=seed, source="matrix",
                       status=status, curve=((0.5, 0.1, 0.4), (1.5, alc or 0.0, 0.7)), alc=alc,
                       final_nauc=alc, final_accuracy=0.7 if alc is not None else None, time_budget=1200.0, t0=60.0,
                       wall_time=2.1, device="cpu")


def test_round_trip_and_one_row_per_key(tmp_path: Path) -> None:
    store = ObservationStore(tmp_path / "obs.sqlite")
    first = _obs()
    assert store.add(first) and not store.add(_obs(alc=0.9))  # same key: the first row stays
    assert len(store) == 1
    back = store.get("hash-a", FinetuneConfig(backbone="lenet", pretrained="none"), 2.0, "seconds", 0, 1200.0, 60.0)
    assert back == first and back.alc == 0.5 and back.curve == ((0.5, 0.1, 0.4), (1.5, 0.5, 0.7))
    assert back.metarec_version and back.created_at and back.group == "a"
    assert store.get("hash-a", first.config_id, 2.0, "seconds", 1, 1200.0, 60.0) is None  # other seed
    assert store.add(_obs(seed=1)) and store.add(_obs(budget=4.0)) and len(store) == 3
    # reopened by another process: the same rows; pandas-style access through plain sqlite works too
    again = ObservationStore(tmp_path / "obs.sqlite")
    assert [o.seed for o in again.observations()] == [0, 1, 0]
    with sqlite3.connect(tmp_path / "obs.sqlite") as con:
        assert con.execute("SELECT COUNT(*), MIN(alc) FROM observations").fetchone() == (3, 0.5)
    pd = pytest.importorskip("pandas")  # the documented one-liner for data scientists
    df = pd.read_sql_query("select * from observations", sqlite3.connect(tmp_path / "obs.sqlite"))
    assert len(df) == 3 and {"dataset_hash", "group", "configuration", "budget", "seed", "curve", "alc",
                             "wall_time", "device", "metarec_version"} <= set(df.columns)


def test_config_id_ignores_the_seed_only() -> None:
    a = FinetuneConfig(backbone="lenet", pretrained="none")
    assert config_id(a) == config_id(a.replace(seed=7)) != config_id(a.replace(lr=0.01))


def test_refusals(tmp_path: Path) -> None:
    path = tmp_path / "obs.sqlite"
    ObservationStore(path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    with pytest.raises(ArtifactError, match="format version 99"):
        ObservationStore(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ArtifactError, match="not a usable observation store"):
        ObservationStore(junk)
    with pytest.raises(ConfigError, match="source"):
        Observation(**{**_obs().__dict__, "source": "elsewhere"})


def test_view_is_rectangular_with_curves_missing_cells_and_failures(tmp_path: Path) -> None:
    store = ObservationStore(tmp_path / "obs.sqlite")
    c1 = FinetuneConfig(backbone="lenet", pretrained="none")
    c2 = c1.replace(lr=0.01)
    store.add(_obs("a", c1, alc=0.2))
    store.add(_obs("a", c1, seed=1, alc=0.4))
    store.add(_obs("b", c1, alc=0.6))
    store.add(_obs("a", c2, alc=None, status="diverged"))
    view = performance_view(store, [config_id(c1), config_id(c2)], {"a": "hash-a", "b": "hash-b"},
                            budget=2.0, budget_kind="seconds", time_budget=1200.0, t0=60.0)
    assert view.scores.shape == (2, 2) and view.scores[0, 0] == pytest.approx(0.3)  # mean over two seeds
    assert view.scores[0, 1] == pytest.approx(0.6) and np.isnan(view.scores[1, 0]) and np.isnan(view.scores[1, 1])
    assert view.n_seeds.tolist() == [[2, 1], [1, 0]]
    (t0, v0), (t1, v1) = view.curve(config_id(c1), "a")  # the mean of the two seeds' curves (t, nauc)
    assert (t0, v0, t1) == (0.5, 0.1, 1.5) and v1 == pytest.approx(0.3)
    assert view.curve(config_id(c2), "a") == () and view.missing == ((config_id(c2), "b"),)
    noise = seed_noise(store)
    assert noise["cells_with_two_seeds"] == 1 and noise["mean_abs_diff"] == pytest.approx(0.2)
    other = performance_view(store, [config_id(c1)], {"a": "hash-a"}, budget=9.0, budget_kind="seconds",
                             time_budget=1200.0, t0=60.0)
    assert other.missing == ((config_id(c1), "a"),)  # another budget is another cell


@pytest.mark.timeout(120)
def test_objective_writes_the_store_and_skips_what_is_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from offline_search import objective
    from tests.fixtures.factories import make_image_folder

    data = make_image_folder(tmp_path / "ds", {"r": 8, "g": 8}, size=(12, 12))
    store_path = tmp_path / "obs.sqlite"
    kwargs = {"dataset": str(data), "budget_kind": "epochs", "base": {"input_size": 12, "head_width": 16},
              "store": str(store_path), "dataset_name": "ds", "group": "src", "source": "bohb"}
    config = {"backbone": "lenet", "pretrained": "none", "strategy": "full", "optimizer": "adam",
              "batch_size": 16, "lr": 0.01, "dropout": 0.1, "head_layers": 1}
    first = objective.finetune_objective(config, 1, **kwargs)
    rows = ObservationStore(store_path).observations()
    assert len(rows) == 1 and rows[0].group == "src" and rows[0].source == "bohb" and rows[0].curve
    assert rows[0].alc == pytest.approx(first["info"]["alc"]) and rows[0].device == "cpu"

    def no_training(*args: object, **kw: object) -> None:
        raise AssertionError("a stored cell was trained again")

    monkeypatch.setattr(objective, "finetune", no_training)
    again = objective.finetune_objective(config, 1, **kwargs)
    assert again["loss"] == pytest.approx(first["loss"]) and again["info"]["cached"] is True
    # a configuration that cannot run here is stored as a failure and not retried
    bad = {**config, "backbone": "efficientnet_mini", "pretrained": "imagenet"}
    monkeypatch.undo()
    with pytest.raises(ConfigError):
        objective.finetune_objective(bad, 1, **kwargs)
    monkeypatch.setattr(objective, "finetune", no_training)
    out = objective.finetune_objective(bad, 1, **kwargs)
    assert out["loss"] == objective.WORST_LOSS and "ImageNet" in out["info"]["error"]


# The format-1 schema exactly as metarec wrote it before the provenance column (issue 14 §1): a file of a build
# still running under the older code must stay readable and appendable, and stay format 1 until a job row needs
# the new column.
_V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('format_version', '1');
CREATE TABLE observations (id INTEGER PRIMARY KEY AUTOINCREMENT, "dataset" TEXT, "dataset_hash" TEXT, "group" TEXT,
  "configuration" TEXT, "budget" REAL, "budget_kind" TEXT, "seed" INTEGER, "source" TEXT, "status" TEXT,
  "curve" TEXT, "alc" REAL, "final_nauc" REAL, "final_accuracy" REAL, "time_budget" REAL, "t0" REAL,
  "wall_time" REAL, "device" TEXT, "error" TEXT, "metarec_version" TEXT, "created_at" TEXT, "config_id" TEXT,
  UNIQUE (dataset_hash, config_id, budget, budget_kind, seed, time_budget, t0));
"""


def test_format_1_file_is_read_appended_and_upgraded_in_place_by_provenance(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    with sqlite3.connect(path) as con:
        con.executescript(_V1_SCHEMA)
        con.execute("INSERT INTO observations (dataset, dataset_hash, \"group\", configuration, budget, budget_kind, "
                    "seed, source, status, curve, alc, final_nauc, final_accuracy, time_budget, t0, wall_time, "
                    "device, error, metarec_version, created_at, config_id) VALUES ('a', 'hash-a', 'a', ?, 2.0, "
                    "'seconds', 0, 'matrix', 'completed', '[[0.5, 0.1, 0.4]]', 0.5, 0.5, 0.7, 1200.0, 60.0, 2.1, "
                    "'cpu', '', '0.1', '2026-01-01', ?)",
                    (__import__("json").dumps(_obs().configuration, sort_keys=True), _obs().config_id))
    store = ObservationStore(path)
    assert store.format_version == 1 and [o.provenance for o in store.observations()] == [""]
    assert store.add(_obs(seed=1)) and store.format_version == 1  # a plain row keeps the file at format 1
    with sqlite3.connect(path) as con:  # so the older code's own column list still fits the table
        assert "provenance" not in [r[1] for r in con.execute("PRAGMA table_info(observations)")]
    job_row = Observation(**{**_obs(seed=2).__dict__, "source": "job", "provenance": "job:job_123"})
    assert store.add(job_row) and store.format_version == 2  # upgraded in place, rows kept
    rows = ObservationStore(path).observations()
    assert [(o.seed, o.provenance) for o in rows] == [(0, ""), (1, ""), (2, "job:job_123")]
    with sqlite3.connect(path) as con:
        con.execute("UPDATE meta SET value = '3' WHERE key = 'format_version'")
    with pytest.raises(ArtifactError, match="format version 3 is not supported.*upgrade metarec"):
        ObservationStore(path)


def test_import_from_copies_missing_rows_only(tmp_path: Path) -> None:
    packaged, service = ObservationStore(tmp_path / "a.sqlite"), ObservationStore(tmp_path / "b.sqlite")
    packaged.add_many([_obs(seed=0), _obs(seed=1)])
    service.add(_obs(seed=1, alc=0.9))
    assert service.import_from(packaged) == 1 and service.import_from(packaged) == 0
    assert sorted((o.seed, o.alc) for o in service.observations()) == [(0, 0.5), (1, 0.9)]
    assert len(packaged) == 2
