"""The ``metarec`` console script: JSON contracts, clean errors, saved arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metafeatures.fingerprint import Fingerprints
from metarec.cli import main
from tests.fixtures.cli import run_json
from tests.fixtures.factories import make_image_folder, make_npz


def test_summary_json_contract(tmp_path, capsys):
    root = make_image_folder(tmp_path / "ds", {"a": 3, "b": 2})
    (root / "a" / "bad.png").write_bytes(b"")
    out = run_json(capsys, ["datasets", "summary", str(root), "--json"])
    for key in ("name", "modality", "n_items", "n_classes", "class_counts", "mean_height", "mean_width",
                "channels", "skipped"):
        assert key in out
    assert out["n_items"] == 5 and out["skipped"] == 1 and out["modality"] == "image"


def test_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "one" / "a").mkdir(parents=True)
    (tmp_path / "one" / "a" / "x.png").write_bytes(b"")
    cmd = [sys.executable, "-m", "metarec.cli", "datasets", "summary", str(tmp_path / "nope"), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "no such file or directory" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(cmd[:-2] + [str(tmp_path / "one"), "--strict"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_fingerprint_command_writes_artifact(tmp_path, capsys):
    ds = make_npz(tmp_path / "d.npz", n=24)
    out = run_json(capsys, ["fingerprint", str(ds), "--out", str(tmp_path / "fp.npz"), "--backbone", "resnet18",
                            "--weights", "random", "--resolution", "32", "--n-samples", "10", "--json"])
    assert out["n"] == 10 and out["feature_dim"] == 512 and out["spec"]["weights"] == "random:seed=0"
    fp = Fingerprints.load(Path(out["out"]))
    assert fp.features.shape == (10, 512)


def test_missing_weights_error_reaches_the_user(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    ds = make_npz(tmp_path / "d.npz", n=8)
    assert main(["fingerprint", str(ds), "--out", str(tmp_path / "f.npz"), "--backbone", "resnet18"]) == 2
    assert "resnet18-f37072fd.pth" in capsys.readouterr().err


def test_matchers_eval_json_contract(tmp_path, capsys):
    col = tmp_path / "col"
    for k in range(3):
        make_image_folder(col / f"ds{k}", {"a": 20, "b": 20}, size=(12 + 8 * k, 12 + 8 * k), grey=k == 1, seed=k)
    out_dir = tmp_path / "eval"
    out = run_json(capsys, ["matchers", "eval", "--collection", str(col), "--batch-sizes", "1,8", "--backbone",
                            "resnet18", "--weights", "random", "--resolution", "32", "--n-samples", "32",
                            "--n-batches", "5", "--out-dir", str(out_dir), "--json", "--quiet"])
    assert set(out["matchers"]) == {"kmeans", "mlp", "moments"}
    for accs in out["matchers"].values():
        assert set(accs) == {"1", "8"} and all(0.0 <= a <= 1.0 for a in accs.values())
    assert (out_dir / "matchers_eval.png").stat().st_size > 1000
    assert json.loads((out_dir / "args.json").read_text())["n_samples"] == 32
    assert np.isclose(out["matchers"]["mlp"]["8"], np.mean(list(out["per_dataset"]["mlp"]["8"].values())))


@pytest.mark.parametrize("sizes, message", [("0,8", "must be positive integers"),
                                           ("a", "expected comma-separated integers")])
def test_bad_arguments_exit_with_usage(sizes, message, capsys):
    with pytest.raises(SystemExit) as err:
        main(["matchers", "eval", "--collection", "x", "--batch-sizes", sizes])
    assert err.value.code == 2 and message in capsys.readouterr().err


def test_finetune_command_contract(tmp_path, capsys):
    root = make_image_folder(tmp_path / "ds", {"a": 12, "b": 12}, size=(16, 16))
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"backbone": "lenet", "pretrained": "none", "input_size": 16, "head_width": 32}))
    out_dir = tmp_path / "run"
    out = run_json(capsys, ["finetune", str(root), "--config", str(config), "--batch-size", "8", "--epochs", "2",
                            "--out", str(out_dir), "--json", "--quiet"])
    assert out["status"] == "completed" and out["config"]["batch_size"] == 8 and out["config"]["backbone"] == "lenet"
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert -1 <= metrics["alc"] <= 1 and metrics["time_budget"] == 1200 and metrics["t0"] == 60
    assert all({"t", "nauc", "accuracy"} <= set(p) for p in metrics["learning_curve"])
    assert (out_dir / "model.pt").is_file() and (out_dir / "curve.png").stat().st_size > 1000


def test_finetune_bad_config_names_the_field(tmp_path, capsys):
    root = make_image_folder(tmp_path / "ds", {"a": 4, "b": 4}, size=(16, 16))
    assert main(["finetune", str(root), "--backbone", "lenet", "--lr", "5", "--epochs", "1",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "lr" in err and "Traceback" not in err
    assert main(["finetune", str(root), "--backbone", "lenet", "--out", str(tmp_path / "run")]) == 2
    assert "budget" in capsys.readouterr().err


def test_zoo_list_json(capsys):
    rows = run_json(capsys, ["zoo", "list", "--input-size", "32", "--json"])
    by_name = {r["name"]: r for r in rows}
    assert "error" in by_name["alexnet"] and by_name["lenet"]["params"] > 0
    assert by_name["resnet18"]["flops"] > by_name["mobilenet_v3_small"]["flops"] > 0
    assert by_name["efficientnet_mini"]["imagenet_weights"] == "none exist"
