"""Dataset ingestion: the three layouts, collections, bad input, mode conversion, sampling, summary."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from metafeatures.datasets import open_collection, open_dataset, sample_images, sample_indices
from metafeatures.errors import (
    DatasetError,
    EmptyDatasetError,
    ManifestError,
    NpzFormatError,
    SingleClassError,
    UnreadableImageError,
    UnsupportedFileError,
)
from metafeatures.images import adaptive_size, decode_image
from metafeatures.summary import content_hash, summarize
from tests.fixtures.factories import make_csv_dataset, make_image_folder, make_npz


def test_image_folder_summary(tmp_path):
    root = make_image_folder(tmp_path / "ds", {"cat": 5, "dog": 3}, size=(16, 20))
    ds = open_dataset(root)
    s = summarize(ds)
    assert (s.name, s.n_items, s.n_classes, s.layout) == ("ds", 8, 2, "folder")
    assert s.class_counts == {"cat": 5, "dog": 3}
    assert (s.mean_height, s.mean_width, s.channels, s.skipped) == (16, 20, 3, 0)
    assert s.split_counts == {"unsplit": 8}


def test_grey_images_are_reported_as_one_channel(tmp_path):
    s = summarize(open_dataset(make_image_folder(tmp_path / "g", {"a": 2, "b": 2}, grey=True)))
    assert s.channels == 1


def test_train_test_folders(tmp_path):
    make_image_folder(tmp_path / "ds", {"a": 3, "b": 2}, split="train")
    make_image_folder(tmp_path / "ds", {"a": 1, "b": 1}, split="test")
    s = summarize(open_dataset(tmp_path / "ds"))
    assert s.split_counts == {"test": 2, "train": 5}
    assert s.class_counts == {"a": 4, "b": 3}


def test_varying_sizes_statistics(tmp_path):
    root = make_image_folder(tmp_path / "ds", {"a": 2, "b": 2}, size=(10, 10))
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(root / "a" / "big.png")
    s = summarize(open_dataset(root))
    assert s.max_height == 30 and s.min_width == 10
    assert s.mean_height == pytest.approx((4 * 10 + 30) / 5)
    assert s.std_width > 0


def test_csv_manifest_with_splits(tmp_path):
    root = make_csv_dataset(tmp_path / "c", [("img/a1.png", "a", "train"), ("img/a2.png", "a", "test"),
                                             ("img/b1.png", "b", "train")])
    ds = open_dataset(root)
    assert ds.layout == "csv" and len(ds) == 3
    assert summarize(ds).split_counts == {"test": 1, "train": 2}
    assert open_dataset(root / "manifest.csv").name == "c"


@pytest.mark.parametrize("bad", ["../outside.png", "/etc/passwd.png", "img/../../x.png"])
def test_csv_paths_outside_root_are_refused(tmp_path, bad):
    root = make_csv_dataset(tmp_path / "c", [("img/a1.png", "a", None), ("img/b1.png", "b", None)])
    with open(root / "manifest.csv", "a") as fh:
        fh.write(f"{bad},a,\n")
    with pytest.raises(ManifestError, match="outside the dataset root") as err:
        open_dataset(root)
    assert "manifest.csv" in str(err.value)


def test_csv_symlink_escaping_root_is_refused(tmp_path):
    outside = tmp_path / "secret.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(outside)
    root = make_csv_dataset(tmp_path / "c", [("img/a1.png", "a", None), ("img/b1.png", "b", None)])
    (root / "img" / "link.png").symlink_to(outside)
    with open(root / "manifest.csv", "a") as fh:
        fh.write("img/link.png,a,\n")
    with pytest.raises(ManifestError, match="outside"):
        open_dataset(root)


def test_csv_bad_split_and_missing_file(tmp_path):
    root = make_csv_dataset(tmp_path / "c", [("a.png", "a", None), ("b.png", "b", None), ("c.png", "b", None)])
    (root / "c.png").unlink()
    ds = open_dataset(root)
    s = summarize(ds)
    assert s.n_items == 2 and s.skipped == 1 and "c.png" in s.skipped_files[0].path
    with open(root / "manifest.csv", "a") as fh:
        fh.write("a.png,a,validation\n")
    with pytest.raises(ManifestError, match="split must be train or test"):
        open_dataset(root)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_dataset_and_streamed_rows(tmp_path, compressed):
    path = make_npz(tmp_path / "d.npz", n=40, shape=(9, 7), compressed=compressed)
    ds = open_dataset(path)
    s = summarize(ds)
    assert (s.n_items, s.n_classes, s.mean_height, s.mean_width, s.channels) == (40, 3, 9, 7, 1)
    idx, imgs = sample_images(ds, 6, seed=3)
    x = np.load(path)["x"]
    for i, img in zip(idx, imgs, strict=True):
        assert img.shape == (9, 7, 3) and np.array_equal(img[..., 0], x[i])


def test_npz_colour_and_string_labels(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, x=np.zeros((4, 5, 5, 3), np.uint8), y=np.array(["u", "v", "u", "v"]),
             split=np.array(["train", "train", "test", "test"]))
    s = summarize(open_dataset(path))
    assert s.channels == 3 and s.class_counts == {"u": 2, "v": 2} and s.split_counts == {"test": 2, "train": 2}


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((4, 5, 5), np.float32), "y": np.arange(4) % 2}, "uint8"),
    ({"x": np.zeros((4, 5), np.uint8), "y": np.arange(4) % 2}, "shape"),
    ({"x": np.zeros((4, 5, 5, 2), np.uint8), "y": np.arange(4) % 2}, "C in 1,3,4"),
    ({"x": np.zeros((4, 5, 5), np.uint8), "y": np.arange(3) % 2}, "to match x"),
    ({"x": np.zeros((4, 5, 5), np.uint8), "y": np.ones(4) * 0.5}, "integers or strings"),
    ({"x": np.zeros((4, 5, 5), np.uint8)}, "missing array 'y'"),
    ({"y": np.arange(4)}, "missing array 'x'"),
])
def test_npz_wrong_shapes_and_dtypes(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(NpzFormatError, match=message) as err:
        open_dataset(path)
    assert "bad.npz" in str(err.value)


def test_npz_object_dtype_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.zeros((2, 3, 3), np.uint8), y=np.array([{"a": 1}, {"b": 2}], dtype=object))
    with pytest.raises(NpzFormatError):
        open_dataset(path)


def test_not_a_zip_npz(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(NpzFormatError, match="junk.npz"):
        open_dataset(tmp_path / "junk.npz")


def _corrupt_files(root):
    """Add one file of each kind of bad input to class 'a' of an image folder."""
    (root / "a" / "empty.png").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 40, 3), 100, np.uint8)).save(buf, format="PNG")
    (root / "a" / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    jpg = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpg, format="JPEG")
    (root / "a" / "truncated.jpg").write_bytes(jpg.getvalue()[:300])
    (root / "a" / "garbage.png").write_bytes(b"\x89PNG not really")
    (root / "a" / "notes.txt").write_text("hello")


def test_bad_files_are_skipped_and_reported(tmp_path):
    root = make_image_folder(tmp_path / "ds", {"a": 3, "b": 3})
    _corrupt_files(root)
    ds = open_dataset(root)
    s = summarize(ds)
    assert s.n_items == 6 and s.skipped == 5
    reasons = {p.path.rsplit("/", 1)[-1]: p.reason for p in s.skipped_files}
    assert "empty file" in reasons["empty.png"]
    assert "unknown image extension" in reasons["notes.txt"]
    assert set(reasons) == {"empty.png", "truncated.png", "truncated.jpg", "garbage.png", "notes.txt"}


def test_strict_raises_typed_errors(tmp_path):
    root = make_image_folder(tmp_path / "ds", {"a": 2, "b": 2})
    (root / "a" / "notes.txt").write_text("x")
    with pytest.raises(UnsupportedFileError, match="notes.txt"):
        open_dataset(root, strict=True)
    (root / "a" / "notes.txt").unlink()
    (root / "a" / "empty.png").write_bytes(b"")
    ds = open_dataset(root, strict=True)
    with pytest.raises(UnreadableImageError, match="empty.png"):
        summarize(ds)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(UnreadableImageError, match="decompression-bomb"):
        decode_image(path)


def test_empty_and_single_class_datasets(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(EmptyDatasetError):
        open_dataset(tmp_path / "empty")
    with pytest.raises(SingleClassError, match="only one class"):
        open_dataset(make_image_folder(tmp_path / "one", {"only": 3}))
    root = make_image_folder(tmp_path / "allbad", {"a": 1, "b": 1})
    for f in root.rglob("*.png"):
        f.write_bytes(b"")
    with pytest.raises(EmptyDatasetError):
        summarize(open_dataset(root))
    with pytest.raises(DatasetError, match="no such file"):
        open_dataset(tmp_path / "nope")


@pytest.mark.parametrize("mode, value, expected", [
    ("L", 77, (77, 77, 77)),
    ("1", 1, (255, 255, 255)),
    ("I;16", 65535, (255, 255, 255)),
    ("I;16", 257 * 10, (10, 10, 10)),
    ("RGBA", (10, 20, 30, 0), (10, 20, 30)),
    ("LA", (50, 128), (50, 50, 50)),
    ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
])
def test_modes_convert_to_rgb(tmp_path, mode, value, expected):
    path = tmp_path / ("x.tiff" if mode in ("I;16", "CMYK") else "x.png")
    Image.new(mode, (3, 2), value).save(path)
    arr = decode_image(path)
    assert arr.shape == (2, 3, 3) and arr.dtype == np.uint8
    assert tuple(arr[0, 0]) == expected


def test_palette_image_converts(tmp_path):
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    im.save(tmp_path / "p.png")
    assert tuple(decode_image(tmp_path / "p.png")[0, 0]) == (200, 100, 50)


def test_adaptive_size_follows_seed_000():
    assert adaptive_size(30, 40) == (30, 40)
    assert adaptive_size(200, 100) == (128, 64)
    assert adaptive_size(300, 400, max_edge=64) == (48, 64)


def test_sampling_is_reproducible_and_replaces_unreadable(tmp_path):
    root = make_image_folder(tmp_path / "ds", {"a": 10, "b": 10})
    ds = open_dataset(root)
    assert np.array_equal(sample_indices(ds, 5, seed=1), sample_indices(ds, 5, seed=1))
    assert not np.array_equal(sample_indices(ds, 5, seed=1), sample_indices(ds, 5, seed=2))
    first = sample_indices(ds, 5, seed=1)
    ds.path_of(ds.items[int(first[0])]).write_bytes(b"")
    idx, imgs = sample_images(ds, 5, seed=1)
    assert len(idx) == 5 and int(first[0]) not in idx and len(ds.skipped) == 1
    assert len(sample_indices(ds, 100, seed=0)) == 20
    assert set(sample_indices(ds, 100, seed=0, split="train")) == set()


def test_collection_mixes_folders_and_npz(tmp_path):
    make_image_folder(tmp_path / "col" / "pics", {"a": 2, "b": 2})
    make_npz(tmp_path / "col" / "arrays.npz")
    (tmp_path / "col" / ".hidden").mkdir()
    col = open_collection(tmp_path / "col")
    assert sorted(col) == ["arrays", "pics"]
    make_npz(tmp_path / "col" / "pics.npz")
    with pytest.raises(DatasetError, match="named 'pics'"):
        open_collection(tmp_path / "col")


def test_content_hash_tracks_content(tmp_path):
    root = make_image_folder(tmp_path / "ds", {"a": 2, "b": 2})
    h1 = content_hash(open_dataset(root))
    assert h1 == content_hash(open_dataset(root))
    Image.fromarray(np.zeros((16, 20, 3), np.uint8)).save(root / "a" / "0000.png")
    assert content_hash(open_dataset(root)) != h1
