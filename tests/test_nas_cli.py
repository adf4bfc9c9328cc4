"""``metarec nas search`` end to end: a tiny real search, the saved entry, its checkpoint and ``metarec finetune``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from finetune.checkpoint import load_checkpoint, model_from_checkpoint
from finetune.nas.entry import find_entry, load_entry
from metafeatures.errors import ArtifactError
from tests.fixtures.cli import fails, run_json
from tests.fixtures.factories import make_npz

SEARCH = ["--input-size", "16", "--channels", "4", "--budget-s", "4", "--quiet"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real search on a tiny dataset, installed into a private NAS directory (shared by the tests)."""
    root = tmp_path_factory.mktemp("nas")
    data = make_npz(root / "tiny.npz", n=60, shape=(16, 16, 3), n_classes=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("METAREC_NAS_DIR", str(root / "entries"))
        mp.setenv("METAREC_CACHE_DIR", str(root / "cache"))
        capsys = _Capture()
        from metarec.cli import main

        with capsys:
            code = main(["nas", "search", str(data), "--latency-budget-ms", "50", "--name", "tiny",
                         "--out", str(root / "run"), "--json", *SEARCH])
        assert code == 0, capsys.err
        summary = json.loads(capsys.out)
    return {"root": root, "data": data, "summary": summary, "entries": root / "entries"}


class _Capture:
    """stdout/stderr capture usable outside a function-scoped fixture."""

    def __enter__(self) -> _Capture:
        import contextlib
        import io

        self._out, self._err = io.StringIO(), io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(self._out))
        self._stack.enter_context(contextlib.redirect_stderr(self._err))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.out, self.err = self._out.getvalue(), self._err.getvalue()


@pytest.fixture
def nas_env(searched, monkeypatch) -> dict:
    monkeypatch.setenv("METAREC_NAS_DIR", str(searched["entries"]))
    return searched


def test_search_reports_and_installs_an_entry(nas_env):
    s = nas_env["summary"]
    assert s["name"] == "nas:tiny" and s["params"] > 0 and s["latency_ms"] > 0 and s["flops"] > 0
    assert s["budget_met"] is True and s["predicted_latency_ms"] <= 50
    entry = load_entry(Path(s["installed"]), check_weights=True)
    assert entry.meta["dataset"]["content_hash"] and entry.meta["latency_table"]["device"].startswith("cpu")
    assert entry.meta["search"]["options"]["latency_budget_ms"] == 50
    run = nas_env["root"] / "run"
    files = {p.name for p in run.iterdir()}
    assert {"entry.json", "model.pt", "latency_table.json", "search.json", "args.json"} <= files


def test_entry_checkpoint_round_trips(nas_env):
    entry = find_entry("nas:tiny")
    ckpt = load_checkpoint(entry.weights_path)
    assert ckpt.zoo_name == "nas:tiny"
    model = model_from_checkpoint(ckpt)
    again = model_from_checkpoint(load_checkpoint(entry.weights_path))
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(model(x), again(x))
    assert model.backbone.genotype == entry.genotype


def test_searched_entry_finetunes_through_the_cli(nas_env, capsys, tmp_path):
    entry = find_entry("tiny")
    out = run_json(capsys, ["finetune", str(nas_env["data"]), "--backbone", "nas:tiny", "--pretrained",
                            str(entry.weights_path), "--input-size", "16", "--epochs", "1", "--batch-size", "16",
                            "--out", str(tmp_path / "ft"), "--json", "--quiet"])
    assert out["status"] == "completed" and out["config"]["backbone"] == "nas:tiny"
    tuned = load_checkpoint(tmp_path / "ft" / "model.pt")
    assert tuned.zoo_name == "nas:tiny"
    model_from_checkpoint(tuned)  # rebuilds from the installed entry
    rows = run_json(capsys, ["nas", "list", "--json"])
    assert [r["name"] for r in rows] == ["nas:tiny"]


def test_zoo_list_shows_searched_entries(nas_env, capsys, monkeypatch):
    import finetune.zoo

    monkeypatch.setattr(finetune.zoo, "list_models", lambda: ["lenet"])  # only the listing logic, not the zoo
    rows = run_json(capsys, ["zoo", "list", "--input-size", "16", "--json"])
    assert [r["name"] for r in rows] == ["lenet", "nas:tiny"]
    assert rows[1]["params"] > 0 and "searched weights" in rows[1]["imagenet_weights"]


def test_bad_arguments_get_one_line_errors(nas_env, capsys, tmp_path):
    data, out = str(nas_env["data"]), str(tmp_path / "o")
    base = ["nas", "search", data, "--out", out, *SEARCH]
    assert "budget_s" in fails(capsys, ["nas", "search", data, "--beta", "1", "--budget-s", "-3", "--out", out])
    assert "not both" in fails(capsys, [*base, "--beta", "0.1", "--latency-budget-ms", "3"])
    assert "latency weight" in fails(capsys, base)
    assert "latency_budget_ms" in fails(capsys, [*base, "--latency-budget-ms", "-1"])
    assert "no such file" in fails(capsys, ["nas", "search", str(tmp_path / "none"), "--beta", "1", *SEARCH[4:],
                                            "--budget-s", "2", "--out", out])
    assert "exists" in fails(capsys, [*base, "--beta", "1", "--name", "tiny"])
    assert "name" in fails(capsys, [*base, "--beta", "1", "--name", "../up"])
    assert "no searched entry" in fails(capsys, ["nas", "show", "nas:nope"])


def test_tampered_entries_are_refused(nas_env, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(find_entry("tiny").path, copy)
    meta = json.loads((copy / "entry.json").read_text())
    (copy / "entry.json").write_text(json.dumps({**meta, "format_version": 7}))
    with pytest.raises(ArtifactError, match="format version 7"):
        load_entry(copy)
    (copy / "entry.json").write_text(json.dumps(meta))
    (copy / "model.pt").write_bytes(b"not the weights")
    with pytest.raises(ArtifactError, match="sha256"):
        load_entry(copy, check_weights=True)
    table = tmp_path / "table.json"
    tdata = meta["latency_table"]
    table.write_text(json.dumps({**tdata, "device": "cuda:some other GPU"}))
    err = fails(capsys, ["nas", "search", str(nas_env["data"]), "--beta", "1", "--latency-table", str(table),
                         "--out", str(tmp_path / "o2"), "--no-install", *SEARCH])
    assert "measured for device" in err


def test_searched_entry_joins_the_finetune_search_space(nas_env):
    from finetune.config import FinetuneConfig
    from finetune.space import build_search_space

    space = build_search_space(backbones=("lenet", "nas:tiny"), pretrained=("none",))
    assert "nas:tiny" in space["backbone"].choices
    config = FinetuneConfig.from_configspace({**space.get_default_configuration(), "backbone": "nas:tiny"})
    assert config.backbone == "nas:tiny" and config.pretrained == "none"
