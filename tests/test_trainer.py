"""The trainer: budgets, anytime evaluation, ALC, determinism, cancellation, bad input, artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from finetune.checkpoint import load_checkpoint, model_from_checkpoint
from finetune.config import FinetuneConfig
from finetune.data import prepare, split_indices
from finetune.metrics import alc
from finetune.result import FinetuneResult
from finetune.trainer import TrainOptions, finetune, predict_scores
from metafeatures.datasets import open_dataset
from metafeatures.errors import ArtifactError, ConfigError, DatasetError
from tests.fixtures.factories import make_image_folder

LENET = FinetuneConfig(backbone="lenet", pretrained="none", input_size=16, batch_size=16, lr=3e-3, head_width=32)


@pytest.fixture
def tiny(tmp_path):
    """Three tinted classes of 16x16 colour images, 20 each (no test split: the trainer makes one)."""
    return open_dataset(make_image_folder(tmp_path / "tiny", {"r": 20, "g": 20, "b": 20}, size=(16, 16)))


def test_epoch_budget_run_writes_metrics_and_checkpoint(tiny, tmp_path):
    out = tmp_path / "run"
    result = finetune(LENET, tiny, TrainOptions(epochs=3), out_dir=out)
    assert result.status == "completed" and result.steps == 3 * 3  # 48 train images, batch 16
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("alc", "learning_curve", "final_nauc", "final_accuracy", "time_budget", "t0", "config"):
        assert key in metrics
    curve = result.learning_curve
    assert curve[0].step == 1 and curve[-1].step == result.steps
    assert all(a.t < b.t for a, b in zip(curve, curve[1:], strict=False))
    assert result.alc == pytest.approx(alc([p.t for p in curve], [p.nauc for p in curve]))
    assert -1 <= result.alc <= 1 and result.final_accuracy > 0.5  # tinted classes are easy
    assert result.return_time == curve[0].t and result.time_budget == 1200 and result.t0 == 60
    assert FinetuneResult.load(out) == result
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.class_names == ["b", "g", "r"]


def test_checkpoint_reproduces_predictions(tiny, tmp_path):
    finetune(LENET, tiny, TrainOptions(epochs=1), out_dir=tmp_path / "run")
    model = model_from_checkpoint(load_checkpoint(tmp_path / "run" / "model.pt"))
    data = prepare(tiny, 16, seed=0)
    from finetune.trainer import _Batches

    scores = predict_scores(model, data.x_test, _Batches(torch.device("cpu")), 64, amp=False)
    result = FinetuneResult.load(tmp_path / "run")
    assert float((scores.argmax(1) == data.y_test).mean()) == pytest.approx(result.final_accuracy)


def test_deterministic_on_cpu(tiny, tmp_path):
    a = finetune(LENET, tiny, TrainOptions(epochs=2), out_dir=tmp_path / "a")
    b = finetune(LENET, tiny, TrainOptions(epochs=2), out_dir=tmp_path / "b")
    # evaluation times follow the wall clock, so which steps get evaluated may differ; the training does not
    last_a, last_b = a.learning_curve[-1], b.learning_curve[-1]
    assert (last_a.nauc, last_a.accuracy, last_a.step) == (last_b.nauc, last_b.accuracy, last_b.step)
    sa = load_checkpoint(tmp_path / "a" / "model.pt").state_dict
    sb = load_checkpoint(tmp_path / "b" / "model.pt").state_dict
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_time_budget_includes_evaluation(tiny):
    result = finetune(LENET, tiny, TrainOptions(budget_s=2.0))
    assert result.status == "completed" and result.steps >= 2
    assert result.wall_time < 2.0 + 1.5  # the last evaluation may end slightly past the budget
    assert len(result.learning_curve) >= 2  # first prediction after one step, then the final one
    assert result.budget_epochs is None and result.epochs > 0


def test_cancellation_stops_cleanly_and_keeps_results(tiny, tmp_path):
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 4

    result = finetune(LENET, tiny, TrainOptions(epochs=50, should_stop=stop), out_dir=tmp_path / "run")
    assert result.status == "cancelled" and result.steps == 4
    assert FinetuneResult.load(tmp_path / "run").status == "cancelled"
    assert result.learning_curve and result.learning_curve[-1].step <= 4


def test_progress_callback_reports_fractions(tiny):
    seen = []
    finetune(LENET, tiny, TrainOptions(epochs=2, on_progress=lambda f, p: seen.append((f, p))))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0 < fractions[0] < 1
    assert all(p is not None for _, p in seen)


def test_backbone_that_does_not_fit_the_input_fails_before_training(tiny, tmp_path):
    config = LENET.replace(backbone="alexnet", input_size=16)
    with pytest.raises(ConfigError, match="alexnet"):
        finetune(config, tiny, TrainOptions(epochs=1), out_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_test_class_missing_from_train_is_refused(tmp_path):
    make_image_folder(tmp_path / "ds", {"a": 4, "b": 4}, split="train")
    make_image_folder(tmp_path / "ds", {"a": 2, "c": 2}, split="test")
    with pytest.raises(DatasetError, match=r"\['c'\] appear in the test split but not in train"):
        finetune(LENET, open_dataset(tmp_path / "ds"), TrainOptions(epochs=1))


def test_empty_split_is_refused(tmp_path):
    make_image_folder(tmp_path / "ds", {"a": 4, "b": 4}, split="train")
    make_image_folder(tmp_path / "ds", {"a": 1, "b": 1}, split="test")
    for f in (tmp_path / "ds" / "test").rglob("*.png"):
        f.write_bytes(b"")
    with pytest.raises(DatasetError, match="test split is empty"):
        prepare(open_dataset(tmp_path / "ds"), 16)


def test_stratified_split_and_dataset_split(tiny, tmp_path):
    train, test, source = split_indices(tiny, 0.25, seed=0)
    labels = tiny.labels
    assert source.startswith("stratified") and len(test) == 15
    assert sorted(np.unique(labels[test], return_counts=True)[1]) == [5, 5, 5]
    assert not set(train) & set(test)
    make_image_folder(tmp_path / "s", {"a": 3, "b": 3}, split="train")
    make_image_folder(tmp_path / "s", {"a": 1, "b": 1}, split="test")
    assert split_indices(open_dataset(tmp_path / "s"), 0.25, 0)[2] == "dataset"


def test_options_are_validated():
    with pytest.raises(ConfigError, match="budget"):
        TrainOptions()
    with pytest.raises(ConfigError, match="budget_s"):
        TrainOptions(budget_s=0)


def test_frozen_strategy_trains_only_the_head(tiny, tmp_path):
    config = LENET.replace(strategy="frozen")
    finetune(config, tiny, TrainOptions(epochs=1), out_dir=tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run" / "model.pt")
    torch.manual_seed(0)
    from finetune.model import build_model

    fresh = build_model("lenet", 3, pretrained="none", head=config.head_spec(), strategy="frozen",
                        input_size=(16, 16), seed=0).state_dict()
    backbone_keys = [k for k in fresh if k.startswith("backbone.")]
    assert backbone_keys and all(torch.equal(fresh[k], ckpt.state_dict[k]) for k in backbone_keys)
    assert any(not torch.equal(fresh[k], ckpt.state_dict[k]) for k in fresh if k.startswith("head."))


def test_result_file_version_is_checked(tiny, tmp_path):
    finetune(LENET, tiny, TrainOptions(epochs=1), out_dir=tmp_path / "run")
    path = tmp_path / "run" / "metrics.json"
    data = json.loads(path.read_text())
    data["format_version"] = 7
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="format version 7"):
        FinetuneResult.load(tmp_path / "run")


def test_diverged_loss_is_reported_not_raised(tiny, tmp_path, monkeypatch):
    import finetune.trainer as trainer

    real = trainer._train_step
    calls = []

    def exploding(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return float("nan") if len(calls) >= 3 else loss

    monkeypatch.setattr(trainer, "_train_step", exploding)
    result = finetune(LENET, tiny, TrainOptions(epochs=5), out_dir=tmp_path / "run")
    assert result.status == "diverged" and "nan" in result.reason and result.steps == 3
    assert not (tmp_path / "run" / "model.pt").exists()  # no checkpoint of a diverged model
    assert FinetuneResult.load(tmp_path / "run").status == "diverged"
