"""Open image datasets (image folder, CSV manifest, .npz), video datasets (folders of clips) and collections.

A dataset is listed cheaply (paths and labels, never pixels); pixels are decoded only for the images
or clips that are asked for, so sampling a large dataset never loads it whole.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from metafeatures import _npz
from metafeatures.errors import (
    DatasetError,
    EmptyDatasetError,
    ManifestError,
    NpzFormatError,
    SingleClassError,
    UnreadableClipError,
    UnreadableImageError,
    UnsupportedFileError,
)
from metafeatures.images import IMAGE_EXTENSIONS, array_to_rgb, check_extension, decode_image
from metafeatures.video import Clip, is_clip_folder, is_video_file, read_clip

Layout = Literal["folder", "csv", "npz"]
Modality = Literal["image", "video"]
SPLITS = ("train", "test")
MANIFEST_NAME = "manifest.csv"


@dataclass(frozen=True)
class Item:
    """One image or clip of a dataset: a path relative to the root (or an npz row index), its label and split."""

    source: str
    label: str
    split: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A file left out of a dataset, with the reason."""

    path: str
    reason: str


@dataclass
class Dataset:
    """A listed dataset: items and classes; pixels are decoded on demand by :meth:`load`."""

    name: str
    root: Path
    layout: Layout
    items: list[Item]
    strict: bool = False
    skipped: list[Skipped] = field(default_factory=list)
    modality: Modality = "image"

    def __len__(self) -> int:
        return len(self.items)

    @property
    def classes(self) -> list[str]:
        """Sorted class names."""
        return sorted({it.label for it in self.items})

    @property
    def labels(self) -> np.ndarray:
        """Label of every item as a string array."""
        return np.array([it.label for it in self.items], dtype=str)

    def path_of(self, item: Item) -> Path:
        """Absolute file path of an item (for npz datasets, the npz file itself)."""
        return self.root if self.layout == "npz" else self.root / item.source

    def load(self, index: int) -> np.ndarray:
        """Decode item ``index`` to (H, W, 3) uint8, or a clip to (T, H, W, 3); errors name the file."""
        if self.layout == "npz":
            return self.load_many([index])[0]
        if self.modality == "video":
            return self.load_clip(index).frames
        return decode_image(self.path_of(self.items[index]))

    def load_clip(self, index: int) -> Clip:
        """Decode every frame of clip ``index`` (video datasets); UnreadableClipError names the clip."""
        if self.modality != "video":
            raise DatasetError(self.root, "not a video dataset: it has images, not clips")
        return read_clip(self.path_of(self.items[index]))

    def load_many(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Decode several items (npz rows are read in one streamed pass)."""
        if self.layout != "npz":
            return [self.load(i) for i in indices]
        rows = [int(self.items[i].source) for i in indices]
        x = _npz.take_rows(self.root, "x", np.asarray(rows, dtype=np.int64))
        return [array_to_rgb(img) for img in x]

    def iter_readable(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (index, image) for readable items; unreadable ones are recorded (or raised if strict)."""
        if self.layout == "npz":
            yield from zip(indices, self.load_many(indices), strict=True)
            return
        for i in indices:
            try:
                yield i, self.load(i)
            except UnreadableImageError as exc:
                if self.strict:
                    raise
                self.note_skipped(exc)

    def note_skipped(self, exc: DatasetError) -> None:
        """Record a skipped file once."""
        entry = Skipped(exc.path, exc.problem)
        if entry not in self.skipped:
            self.skipped.append(entry)


def open_dataset(path: str | Path, name: str | None = None, strict: bool = False) -> Dataset:
    """Open a dataset at ``path`` (image folder, folder with manifest.csv, a .csv, or a .npz)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(path, "no such file or directory")
    if path.is_file() and path.suffix.lower() == ".npz":
        ds = _open_npz(path, name or path.stem, strict)
    elif path.is_file() and path.suffix.lower() == ".csv":
        ds = _open_csv(path, name or path.parent.name, strict)
    elif path.is_dir() and (path / MANIFEST_NAME).is_file():
        ds = _open_csv(path / MANIFEST_NAME, name or path.name, strict)
    elif path.is_dir():
        ds = _open_folder(path, name or path.name, strict)
    else:
        raise UnsupportedFileError(path, "not a dataset: expected a folder, a .csv manifest or a .npz file")
    _check_usable(ds)
    return ds


def open_collection(path: str | Path, strict: bool = False) -> dict[str, Dataset]:
    """Open every dataset in a collection: its sub-folders and ``.npz`` files, by name."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(root, "a collection must be a directory of datasets")
    found: dict[str, Dataset] = {}
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir() or child.suffix.lower() == ".npz":
            name = child.stem if child.is_file() else child.name
            if name in found:
                raise DatasetError(child, f"two datasets in the collection are named {name!r}")
            found[name] = open_dataset(child, name=name, strict=strict)
    if not found:
        raise EmptyDatasetError(root, "the collection holds no datasets (sub-folders or .npz files)")
    return found


def _check_usable(ds: Dataset) -> None:
    """Refuse a dataset with no images (clips) or a single class."""
    if not ds.items:
        what = "clips" if ds.modality == "video" else "images"
        raise EmptyDatasetError(ds.root, f"no readable {what}" + _skip_hint(ds))
    if len(ds.classes) < 2:
        raise SingleClassError(ds.root, f"only one class ({ds.classes[0]!r}); need at least two")


def _skip_hint(ds: Dataset) -> str:
    return f" ({len(ds.skipped)} file(s) skipped, e.g. {ds.skipped[0].path}: {ds.skipped[0].reason})" \
        if ds.skipped else ""


def _open_folder(root: Path, name: str, strict: bool) -> Dataset:
    """``ROOT/[{train,test}/]<class>/<item>``: an item is an image, a video file or a folder of frames (a clip).

    A dataset holds images or clips, never both; which one decides its modality.
    """
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_layout = bool(subdirs) and {p.name for p in subdirs} <= set(SPLITS)
    ds = Dataset(name=name, root=root, layout="folder", items=[], strict=strict)
    groups = [(p.name, p) for p in subdirs] if split_layout else [(None, root)]
    kinds: set[str] = set()
    for split, base in groups:
        for class_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for entry in sorted(class_dir.iterdir()):
                if entry.name.startswith("."):
                    continue
                kind = _item_kind(entry, strict, ds)
                if kind is not None:
                    kinds.add(kind)
                    ds.items.append(Item(entry.relative_to(root).as_posix(), class_dir.name, split))
    if len(kinds) > 1:
        raise DatasetError(root, "the dataset mixes images with video clips (video files or frame folders); "
                                 "keep images and videos in separate datasets")
    ds.modality = "video" if "video" in kinds else "image"
    return ds


def _item_kind(entry: Path, strict: bool, ds: Dataset) -> Modality | None:
    """``video`` for a video file or a folder of frames, ``image`` for an image file; else skip (or raise)."""
    if entry.is_dir():
        if is_clip_folder(entry):
            return "video"
        exc: DatasetError = UnreadableClipError(entry, "the clip folder has zero frames (no image files)")
    elif is_video_file(entry):
        return "video"
    else:
        try:
            check_extension(entry)
            return "image"
        except UnsupportedFileError as unsupported:
            exc = unsupported
    if strict:
        raise exc
    ds.note_skipped(exc)
    return None


def _open_csv(manifest: Path, name: str, strict: bool) -> Dataset:
    """CSV manifest ``path,label[,split]`` (header optional), paths relative to the CSV's folder."""
    root = manifest.parent.resolve()
    ds = Dataset(name=name, root=root, layout="csv", items=[], strict=strict)
    try:
        with open(manifest, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(manifest, f"cannot read manifest: {exc}") from exc
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    for lineno, row in enumerate(rows, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) not in (2, 3):
            raise ManifestError(manifest, f"line {lineno}: expected path,label[,split], got {len(row)} fields")
        rel, label = row[0].strip(), row[1].strip()
        split = row[2].strip().lower() if len(row) == 3 and row[2].strip() else None
        if split is not None and split not in SPLITS:
            raise ManifestError(manifest, f"line {lineno}: split must be train or test, got {split!r}")
        if not label:
            raise ManifestError(manifest, f"line {lineno}: empty label for {rel!r}")
        target = (root / rel).resolve()
        if Path(rel).is_absolute() or not target.is_relative_to(root):
            raise ManifestError(manifest, f"line {lineno}: {rel!r} points outside the dataset root {root}")
        try:
            check_extension(target)
        except UnsupportedFileError as exc:
            if strict:
                raise
            ds.note_skipped(exc)
            continue
        ds.items.append(Item(target.relative_to(root).as_posix(), label, split))
    return ds


def _open_npz(path: Path, name: str, strict: bool) -> Dataset:
    """``.npz`` with ``x`` (N,H,W) or (N,H,W,C) uint8, ``y`` (N,) labels and optional ``split`` (N,)."""
    shape, dtype = _npz.read_header(path, "x")
    if dtype != np.uint8:
        raise NpzFormatError(path, f"x must be uint8, got {dtype}")
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3, 4)):
        raise NpzFormatError(path, f"x must have shape (N,H,W) or (N,H,W,C) with C in 1,3,4; got {shape}")
    if min(shape[1:3], default=0) < 1:
        raise NpzFormatError(path, f"x has empty images: shape {shape}")
    y = _npz.load_small(path, "y")
    if y.ndim != 1 or len(y) != shape[0]:
        raise NpzFormatError(path, f"y must have shape ({shape[0]},) to match x; got {y.shape}")
    if y.dtype.kind not in "iuUS":
        raise NpzFormatError(path, f"y must hold integers or strings, got dtype {y.dtype}")
    splits: list[str | None] = [None] * len(y)
    with np.load(path, allow_pickle=False) as data:
        has_split = "split" in data.files
    if has_split:
        raw = _npz.load_small(path, "split")
        if raw.shape != y.shape or raw.dtype.kind not in "US":
            raise NpzFormatError(path, f"split must be a ({len(y)},) string array, got {raw.shape} {raw.dtype}")
        values = [str(s) for s in raw.astype(str)]
        bad = sorted(set(values) - set(SPLITS))
        if bad:
            raise NpzFormatError(path, f"split values must be train or test, got {bad[:3]}")
        splits = list(values)
    labels = y.astype(str)
    items = [Item(str(i), str(label), split) for i, (label, split) in enumerate(zip(labels, splits, strict=True))]
    return Dataset(name=name, root=path, layout="npz", items=items, strict=strict)


def sample_indices(ds: Dataset, n: int, seed: int = 0, split: str | None = None) -> np.ndarray:
    """A seeded random order of item indices (optionally of one split); take a prefix to sample."""
    pool = np.arange(len(ds)) if split is None else np.array(
        [i for i, it in enumerate(ds.items) if it.split == split], dtype=np.int64)
    rng = np.random.default_rng(seed)
    return rng.permutation(pool)[: max(0, n)] if n < len(pool) else rng.permutation(pool)


def iter_sample_batches(ds: Dataset, n: int, seed: int = 0, split: str | None = None, batch_size: int = 64,
                        ) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Decode ``n`` readable images drawn reproducibly, ``batch_size`` at a time (streaming).

    Items are taken in a seeded random order; an unreadable one is recorded and replaced by the next
    draw, so the chosen set does not depend on ``batch_size``.
    """
    order = sample_indices(ds, len(ds), seed=seed, split=split)
    taken, pos = 0, 0
    while taken < n and pos < len(order):
        block = [int(b) for b in order[pos: pos + min(batch_size, n - taken)]]
        pos += len(block)
        pairs = list(ds.iter_readable(block))
        if pairs:
            taken += len(pairs)
            yield [i for i, _ in pairs], [img for _, img in pairs]
    if taken == 0:
        raise EmptyDatasetError(ds.root, "no readable images to sample" + _skip_hint(ds))


def sample_images(ds: Dataset, n: int, seed: int = 0, split: str | None = None,
                  ) -> tuple[np.ndarray, list[np.ndarray]]:
    """All of :func:`iter_sample_batches` at once: the chosen item indices and their decoded images."""
    chosen: list[int] = []
    images: list[np.ndarray] = []
    for idx, imgs in iter_sample_batches(ds, n, seed=seed, split=split, batch_size=max(1, n)):
        chosen.extend(idx)
        images.extend(imgs)
    return np.asarray(chosen, dtype=np.int64), images


__all__ = [
    "IMAGE_EXTENSIONS", "Dataset", "Item", "Skipped", "iter_sample_batches", "open_collection", "open_dataset",
    "sample_images", "sample_indices",
]
