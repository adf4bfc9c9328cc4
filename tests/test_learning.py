"""The portfolio learns from job observations (issue 14 §1): an update adds datasets through the store, reads a
job's own observation of a pool cell back instead of training it, stops between cells and resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune.trainer import TrainOptions, finetune
from metafeatures.datasets import open_dataset
from metafeatures.errors import ArtifactError, ConfigError
from metafeatures.summary import summarize
from offline_search.update import update_portfolio
from portfolio.artifact import load_portfolio
from portfolio.store import ObservationStore
from service.db import DatasetRow, JobRow
from service.learning import job_observation, usable
from tests.fixtures.learning import CELL_S, CONFIGS, make_collection, make_learning_portfolio

pytestmark = pytest.mark.timeout(300)


class _Stop(Exception):
    pass


def test_update_adds_a_dataset_through_the_store_and_resumes(tmp_path: Path) -> None:
    root = make_collection(tmp_path)
    source = make_learning_portfolio(root / "pf", root / "known")
    old = load_portfolio(source)
    store = ObservationStore(root / "service.sqlite")
    # a served job: candidate "noise" (CONFIGS[0]) fine-tuned on fam_a for the portfolio's cell budget
    ds = open_dataset(root / "new" / "fam_a")
    summary = summarize(ds)
    result = finetune(CONFIGS[0], ds, TrainOptions(budget_s=CELL_S, save_checkpoint=False))
    assert usable(result)
    row = DatasetRow(id="ds_1", name="fam_a", path=str(ds.root), content_hash=summary.content_hash,
                     summary=summary.model_dump(mode="json"))
    obs = job_observation(JobRow(id="job_1"), row, {"budget_s": CELL_S}, result)
    assert store.add(obs) and (obs.source, obs.provenance, obs.budget_kind) == ("job", "job:job_1", "seconds")

    # a cancelled job keeps its curve with the budget it actually trained, never the key of a complete run
    cut = result.model_copy(update={"status": "cancelled", "reason": "cancelled", "wall_time": 0.4321})
    partial = job_observation(JobRow(id="job_2"), row, {"budget_s": CELL_S}, cut)
    assert usable(cut) and (partial.status, partial.budget, partial.alc) == ("cancelled", 0.432, None)
    assert partial.curve == obs.curve and partial.budget != obs.budget
    assert not usable(cut.model_copy(update={"learning_curve": result.learning_curve[:1]}))
    assert not usable(result.model_copy(update={"status": "diverged"}))

    messages: list[str] = []
    done: list[tuple[int, int]] = []

    def stop_after_two(n: int, total: int) -> None:
        done.append((n, total))
        if n == 2:
            raise _Stop

    kwargs = {"collection": root / "known", "include_default": False, "added": {"fam_a": ds.root},
              "store": store.path, "on_progress": messages.append, "work_dir": root / "work"}
    with pytest.raises(_Stop):  # a cancel between cells: nothing published
        update_portfolio(source, root / "pf2", on_cell=stop_after_two, **kwargs)
    assert done == [(1, 6), (2, 6)] and not (root / "pf2").exists()
    # the job's own cell was read back, the other cell on fam_a trained and stored
    assert messages == ["cell 2/6: candidate tinted on fam_a"]
    assert len(store) == 2

    messages.clear()
    new = load_portfolio(update_portfolio(source, root / "pf2", **kwargs))  # resumed: 4 cells left to train
    assert [m for m in messages if m.startswith("cell ")] == [f"cell {n}/6: candidate {c} on {d}" for n, (c, d) in
                                                               enumerate([("noise", "noise"), ("tinted", "noise"),
                                                                          ("noise", "tinted"), ("tinted", "tinted")],
                                                                         3)]
    assert new.portfolio.datasets == ["fam_a", "noise", "tinted"] and new.version != old.version
    assert "metafeatures" in new.selection.neighbors  # recalibrated, the meta-feature neighbours included
    assert new.portfolio.provenance["added_datasets"]["fam_a"]["content_hash"] == summary.content_hash
    assert new.portfolio.provenance["updated_from"] == old.version
    col = new.matrix.dataset_index("fam_a")
    assert new.matrix.scores[0, col] == pytest.approx(obs.alc)  # the job's ALC is the cell's score
    assert len(store) == 6 and {o.source for o in store.observations()} == {"job", "matrix"}

    # the next update starts from that version: fam_a is found where it was registered, fam_b joins it
    messages.clear()
    newer = load_portfolio(update_portfolio(new.directory, root / "pf3", **{
        **kwargs, "added": {"fam_b": root / "new" / "fam_b"}, "located": {"fam_a": ds.root}}))
    assert newer.portfolio.datasets == ["fam_a", "fam_b", "noise", "tinted"]
    trained = [m for m in messages if m.startswith("cell ")]  # fam_a's incumbent repeats one of the two configs
    assert len(trained) == 2 and all(m.endswith(" on fam_b") for m in trained), trained
    with pytest.raises(ArtifactError, match="content hash differs"):
        update_portfolio(new.directory, root / "pf4",
                         **{**kwargs, "added": {}, "located": {"fam_a": root / "new" / "fam_b"}})

    with pytest.raises(ConfigError, match="already a known dataset"):
        update_portfolio(source, root / "pf3", added={"noise": root / "new" / "fam_b"}, store=store.path)
    with pytest.raises(ConfigError, match="content of the known dataset tinted"):
        update_portfolio(source, root / "pf3", added={"copy": root / "known" / "tinted"}, store=store.path)


def test_cli_add_arguments() -> None:
    from metarec.commands.portfolio import _added_args

    assert _added_args(["data/fam/a", "b=data/x/y.npz"]) == {"a": Path("data/fam/a"), "b": Path("data/x/y.npz")}
    with pytest.raises(ConfigError, match="twice"):
        _added_args(["a=x", "y/a"])
