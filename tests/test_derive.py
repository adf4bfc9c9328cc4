"""Derived datasets: deterministic by seed, parameters recorded in the folder and in the summary, CLI forms."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from metafeatures.datasets import open_collection, open_dataset
from metafeatures.derive import (
    DERIVATION_FILE,
    Derivation,
    derive_collection,
    derive_dataset,
    read_derivation,
    sample_derivation,
)
from metafeatures.errors import ConfigError, OutputExistsError
from metafeatures.summary import content_hash, summarize
from tests.fixtures.cli import fails, run_json
from tests.fixtures.factories import make_image_folder, make_npz
from tests.fixtures.video import make_video_dataset


def _tree_digest(root: Path) -> str:
    """sha256 over every file's relative path and bytes (hidden files included)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "src", {f"c{k}": 30 for k in range(5)}, size=(20, 24))


def test_same_seed_same_bytes_other_seed_differs(source: Path, tmp_path: Path) -> None:
    a = derive_dataset(source, tmp_path / "a", n=3, seed=7)
    b = derive_dataset(source, tmp_path / "b", n=3, seed=7)
    c = derive_dataset(source, tmp_path / "c", n=3, seed=8)
    assert [p.name for p in a] == ["src__v00", "src__v01", "src__v02"]
    assert [_tree_digest(p) for p in a] == [_tree_digest(p) for p in b]
    assert [_tree_digest(p) for p in a] != [_tree_digest(p) for p in c]
    # a variant depends only on (seed, source, index), not on how many siblings were made
    one = derive_dataset(source, tmp_path / "one", n=1, seed=7)
    assert _tree_digest(one[0]) == _tree_digest(a[0])


def test_parameters_are_recorded_and_match_the_written_data(source: Path, tmp_path: Path) -> None:
    for path in derive_dataset(source, tmp_path / "out", n=6, seed=1, max_images=120):
        d = read_derivation(path)
        assert d is not None and d.group == "src" and d.source_hash == content_hash(open_dataset(source))
        assert Derivation.from_dict(d.to_dict()) == d
        ds = open_dataset(path)
        assert ds.classes == sorted(d.classes) and 2 <= len(d.classes) <= 5
        train = [it.label for it in ds.items if it.split == "train"]
        test = [it.label for it in ds.items if it.split == "test"]
        assert [train.count(c) for c in d.classes] == list(d.train_per_class)
        assert all(test.count(c) == d.test_per_class for c in d.classes)
        assert len(ds) <= 120
        s = summarize(ds)
        assert s.group == "src" and s.derivation == d.to_dict()
        assert s.model_dump(mode="json")["derivation"]["scale"] == d.scale
        assert s.max_height <= max(8, round(20 * d.scale)) + 1
        if d.colour == "grey":
            assert s.channels == 1


def test_variants_vary_and_cover_the_issue_axes(tmp_path: Path) -> None:
    src = make_image_folder(tmp_path / "big", {f"c{k}": 60 for k in range(12)}, size=(16, 16))
    ds = open_dataset(src)
    ds_hash = content_hash(ds)
    ds_list = [sample_derivation(ds, seed=0, index=k, source_hash=ds_hash) for k in range(40)]
    assert len({d.classes for d in ds_list}) > 10
    assert min(len(d.classes) for d in ds_list) == 2 and max(len(d.classes) for d in ds_list) <= 10
    assert min(min(d.train_per_class) for d in ds_list) <= 20  # few-shot occurs
    assert any(max(d.train_per_class) >= 2 * min(d.train_per_class) for d in ds_list)  # imbalance occurs
    assert {d.scale < 1 for d in ds_list} == {True, False}  # down- and up-/same-scaled
    assert {d.colour for d in ds_list} >= {"keep", "grey"}
    assert any(d.crop < 1 for d in ds_list) and any(d.noise > 0 for d in ds_list)


def test_grey_npz_and_video_sources(tmp_path: Path) -> None:
    npz = make_npz(tmp_path / "digits.npz", n=60, shape=(8, 8), n_classes=3)
    paths = derive_dataset(npz, tmp_path / "out", n=4, seed=0)
    assert {read_derivation(p).colour for p in paths} <= {"keep", "false_colour"}  # type: ignore[union-attr]
    video = make_video_dataset(tmp_path / "vid", {"left": 6, "right": 6}, n_frames=8)
    vpaths = derive_dataset(video, tmp_path / "out", n=2, seed=0)
    for p in vpaths:
        d = read_derivation(p)
        assert d is not None and d.frames in ("single", "stacked") and d.group == "vid"
        assert open_dataset(p).modality == "image"


def test_collection_form_groups_and_refusals(source: Path, tmp_path: Path) -> None:
    coll = tmp_path / "coll"
    make_image_folder(coll / "alpha", {"a": 12, "b": 12})
    make_npz(coll / "beta.npz", n=40, n_classes=4)
    out = tmp_path / "meta"
    paths = derive_collection(coll, out, n=2, seed=3)
    members = open_collection(out)
    assert sorted(members) == ["alpha__v00", "alpha__v01", "beta__v00", "beta__v01"] == [p.name for p in paths]
    assert {summarize(ds).group for ds in members.values()} == {"alpha", "beta"}
    assert not any((out / name / DERIVATION_FILE).parent.name.startswith(".") for name in members)
    with pytest.raises(OutputExistsError):
        derive_collection(coll, out, n=2, seed=3)
    with pytest.raises(ConfigError, match="n"):
        derive_dataset(source, tmp_path / "x", n=0)
    single = make_image_folder(tmp_path / "tiny", {"a": 2, "b": 2})
    with pytest.raises(ConfigError, match="two classes with 3"):
        derive_dataset(single, tmp_path / "y", n=1)


def test_cli_derive_and_errors(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, ["datasets", "derive", str(source), "--out", str(tmp_path / "o"), "--n", "2",
                            "--seed", "5", "--json"])
    assert [r["group"] for r in out["datasets"]] == ["src", "src"]
    assert out["datasets"][0]["derivation"]["seed"] == 5
    err = fails(capsys, ["datasets", "derive", str(source), "--out", str(tmp_path / "o"), "--n", "2"])
    assert "already exist" in err
    err = fails(capsys, ["datasets", "derive", str(source), "--out", str(tmp_path / "p"), "--n", "5000"])
    assert "n" in err and "1000" in err
    # a plain dataset's summary carries no group or derivation keys (unchanged JSON)
    plain = summarize(open_dataset(source)).model_dump(mode="json")
    assert "group" not in plain and "derivation" not in plain
    assert np.isfinite(len(plain))


def test_meta_collection_has_48_datasets_from_14_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default meta-collection's shape, with the (slow, 46 s) demo generators replaced by tiny sources of the
    same names; the real generators are covered by tests/test_demo.py and tests/test_video_demo.py."""
    from metafeatures import demo, demo_video
    from metafeatures.derive import build_meta_collection

    def fake(names: tuple[str, ...], readme: str):
        def generate(out: Path, seed: int = 0, progress: bool = False, overwrite: bool = False) -> list[str]:
            for k, name in enumerate(names):
                make_image_folder(out / name, {"a": 6, "b": 6, "c": 6}, size=(12, 12), seed=k)
            (out / readme).write_text("tiny")
            return list(names)
        return generate

    monkeypatch.setattr(demo, "generate_demo_collection", fake(demo.DEMO_DATASETS, ".README.txt"))
    monkeypatch.setattr(demo_video, "generate_video_demo", fake(demo_video.VIDEO_DEMO_DATASETS, ".README.video.txt"))
    paths = build_meta_collection(tmp_path / "meta", seed=0, max_images=40)
    members = open_collection(tmp_path / "meta")
    assert len(paths) == len(members) == 48 and sorted(members) == sorted(p.name for p in paths)
    groups = {read_derivation(p).group for p in paths}  # type: ignore[union-attr]
    assert len(groups) == 14 and groups == set(demo.DEMO_DATASETS) | set(demo_video.VIDEO_DEMO_DATASETS)
    assert (tmp_path / "meta" / ".sources" / "digits").is_dir()  # hidden: not a member
    with pytest.raises(ConfigError, match="per_image_source"):
        build_meta_collection(tmp_path / "x", per_image_source=-1)
