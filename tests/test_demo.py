"""Tests of the offline demo collection (metafeatures.demo) and the restricted unpickler.

No network is used: every source is installed locally (scikit-learn, animal-mnist, scikit-image) or
procedurally drawn.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metafeatures import demo
from metafeatures._safe_unpickle import RestrictedUnpickler, load_pickled_array, safe_loads
from metafeatures.demo import DEMO_DATASETS, generate_demo_collection
from metafeatures.errors import DatasetError, OutputExistsError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


@pytest.fixture(scope="session")
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The demo collection generated once for the whole session (a few seconds)."""
    out = tmp_path_factory.mktemp("demo")
    names = generate_demo_collection(out, seed=0, progress=False)
    return out, names


def _tree_hash(path: Path) -> str:
    """SHA-256 over relative paths and bytes of every file under ``path`` (or of one file)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(f.relative_to(path.parent).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _raw_inspect(path: Path) -> dict:
    """Read a dataset from its files alone (no metarec reader): layout, labels, image sizes, colour."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as d:
            x, y = d["x"], d["y"]
        assert x.dtype == np.uint8, path
        assert x.ndim in (3, 4) and len(x) == len(y) and y.ndim == 1, path
        assert y.dtype.kind in "iuU", path
        return {"layout": "npz", "labels": [str(v) for v in y], "sizes": {x.shape[1:3]},
                "colour": x.ndim == 4 and x.shape[3] == 3, "splits": set()}
    manifest = path / "manifest.csv"
    if manifest.exists():
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            assert reader.fieldnames == ["path", "label", "split"]
            rows = list(reader)
        sizes, modes = set(), set()
        root = path.resolve()
        for r in rows:
            target = (path / r["path"]).resolve()
            assert target.is_file() and target.is_relative_to(root), r
            assert r["split"] in ("train", "test")
            with Image.open(target) as im:
                sizes.add((im.height, im.width))
                modes.add(im.mode)
        return {"layout": "csv", "labels": [r["label"] for r in rows], "sizes": sizes,
                "colour": modes == {"RGB"}, "splits": {r["split"] for r in rows}}
    subdirs = sorted(p for p in path.iterdir() if p.is_dir())
    split_layout = {p.name for p in subdirs} <= {"train", "test"}
    bases = subdirs if split_layout else [path]
    labels, sizes, modes = [], set(), set()
    for base in bases:
        class_dirs = sorted(p for p in base.iterdir() if p.is_dir())
        assert len(class_dirs) >= 2, base
        for cdir in class_dirs:
            files = sorted(cdir.iterdir())
            assert files and all(f.suffix in IMAGE_SUFFIXES for f in files), cdir
            for f in files:
                with Image.open(f) as im:
                    sizes.add((im.height, im.width))
                    modes.add(im.mode)
            labels += [cdir.name] * len(files)
    return {"layout": "folder-split" if split_layout else "folder", "labels": labels, "sizes": sizes,
            "colour": modes == {"RGB"}, "splits": {p.name for p in subdirs} if split_layout else set()}


@pytest.fixture(scope="session")
def inspected(collection: tuple[Path, list[str]]) -> dict[str, dict]:
    """Raw inspection of every dataset of the session collection, by name."""
    out, names = collection
    result = {}
    for name in names:
        path = out / f"{name}.npz" if (out / f"{name}.npz").exists() else out / name
        assert path.exists(), name
        result[name] = _raw_inspect(path)
    return result


def test_collection_has_at_least_nine_datasets(collection):
    out, names = collection
    assert len(names) >= 9
    assert names == list(DEMO_DATASETS)
    readme = (out / ".README.txt").read_text(encoding="utf-8")
    for name in names:
        assert f"\n{name}\n" in readme
    assert "Licence:" in readme and "BSD-3" in readme and "MIT" in readme and "CC0" in readme
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")], "partial outputs left behind"


def test_every_dataset_is_readable_from_its_files(inspected):
    for name, info in inspected.items():
        counts = {lab: info["labels"].count(lab) for lab in set(info["labels"])}
        assert len(counts) >= 2, name
        assert min(counts.values()) >= 10, (name, counts)


def test_datasets_differ_like_real_ones(inspected):
    n_images = {k: len(v["labels"]) for k, v in inspected.items()}
    assert all(600 <= n <= 2000 for n in n_images.values()), n_images
    assert sum(n_images.values()) <= 12_000
    all_sizes = [s for v in inspected.values() for s in v["sizes"]]
    assert min(min(s) for s in all_sizes) == 8
    assert max(max(s) for s in all_sizes) >= 64
    assert any(h != w for v in inspected.values() if len(v["sizes"]) == 1 for h, w in v["sizes"])
    assert any(len(v["sizes"]) > 5 for v in inspected.values()), "one dataset must have varying sizes"
    colours = {v["colour"] for v in inspected.values()}
    assert colours == {True, False}
    n_classes = [len(set(v["labels"])) for v in inspected.values()]
    assert min(n_classes) == 2 and max(n_classes) >= 10
    ratios = []
    for v in inspected.values():
        counts = [v["labels"].count(lab) for lab in set(v["labels"])]
        ratios.append(max(counts) / min(counts))
    assert max(ratios) >= 5, "at least one strongly imbalanced dataset"
    assert sum(r > 1.5 for r in ratios) >= 2


def test_all_three_layouts_are_used(inspected):
    layouts = [v["layout"] for v in inspected.values()]
    assert layouts.count("npz") >= 2
    assert layouts.count("csv") >= 1
    assert layouts.count("folder-split") >= 1
    assert layouts.count("folder") + layouts.count("folder-split") > len(layouts) / 2
    for v in inspected.values():
        if v["layout"] in ("csv", "folder-split"):
            assert v["splits"] == {"train", "test"}


def test_generation_is_deterministic(collection, tmp_path):
    out, _ = collection
    names = ["noise_spectra", "gratings"]
    generate_demo_collection(tmp_path / "again", seed=0, progress=False, only=names)
    assert _tree_hash(tmp_path / "again" / "noise_spectra") == _tree_hash(out / "noise_spectra")
    assert _tree_hash(tmp_path / "again" / "gratings.npz") == _tree_hash(out / "gratings.npz")
    generate_demo_collection(tmp_path / "other", seed=1, progress=False, only=["gratings"])
    assert _tree_hash(tmp_path / "other" / "gratings.npz") != _tree_hash(out / "gratings.npz")


def test_refuses_to_overwrite_unless_asked(tmp_path):
    generate_demo_collection(tmp_path, progress=False, only=["gratings"])
    with pytest.raises(OutputExistsError, match="gratings"):
        generate_demo_collection(tmp_path, progress=False, only=["gratings"])
    (tmp_path / "hues").mkdir()
    (tmp_path / "hues" / "mine.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="hues"):
        generate_demo_collection(tmp_path, progress=False, only=["hues"])
    assert (tmp_path / "hues" / "mine.txt").exists()
    generate_demo_collection(tmp_path, progress=False, only=["gratings"], overwrite=True)
    assert (tmp_path / "gratings.npz").is_file()


def test_unknown_demo_name_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="known"):
        generate_demo_collection(tmp_path, progress=False, only=["no_such_dataset"])


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_os_system(tmp_path):
    payload = pickle.dumps(_Evil())  # building the pickle is harmless; only loading it would run code
    with pytest.raises(pickle.UnpicklingError, match="system"):
        safe_loads(payload)
    path = tmp_path / "evil.gz"
    with gzip.open(path, "wb") as f:
        f.write(payload)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_pickled_array(path)
    with pytest.raises(pickle.UnpicklingError, match="builtins"):
        safe_loads(pickle.dumps(eval))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_restricted_unpickler_accepts_numpy_arrays(protocol, tmp_path):
    arrays = [np.arange(12, dtype=np.int64).reshape(3, 4), np.array(["a", "bc"]),
              np.arange(20, dtype=np.uint8).reshape(4, 5)[:, ::2]]
    for a in arrays:
        got = safe_loads(pickle.dumps(a, protocol=protocol))
        assert isinstance(got, np.ndarray) and got.dtype == a.dtype
        np.testing.assert_array_equal(got, a)
    path = tmp_path / "a.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(arrays[0], f, protocol=protocol)
    np.testing.assert_array_equal(load_pickled_array(path), arrays[0])
    assert issubclass(RestrictedUnpickler, pickle.Unpickler)


def test_animal_mnist_data_loads_through_restricted_unpickler():
    d = demo._animal_mnist_dir()
    x = load_pickled_array(d / "animal_data_version_3.gz")
    y = load_pickled_array(d / "animal_label_version_3.gz")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert sorted(np.unique(y).tolist()) == list(range(10))


@pytest.mark.skipif(importlib.util.find_spec("metafeatures.datasets") is None,
                    reason="metafeatures.datasets (the dataset reader) is not written yet")
def test_reader_opens_every_demo_dataset(collection, inspected):
    from metafeatures.datasets import open_collection

    out, names = collection
    opened = open_collection(out)
    assert sorted(opened) == sorted(names)
    for name, ds in opened.items():
        raw = inspected[name]
        assert len(ds) == len(raw["labels"]), name
        assert sorted(ds.classes) == sorted(set(raw["labels"])), name
        img = ds.load(0)
        assert img.dtype == np.uint8 and img.ndim == 3, name
