"""Training data for the fine-tuner: a train/test split, decoded once at the target size as uint8 arrays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from metafeatures.datasets import Dataset
from metafeatures.errors import ConfigError, DatasetError, UnreadableImageError
from metafeatures.images import adaptive_size, resize_rgb
from metafeatures.paths import atomic_savez, cache_dir
from metafeatures.summary import content_hash


@dataclass
class PreparedData:
    """Decoded, resized train and test images with integer labels; classes index the logits."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    size: tuple[int, int]
    split_source: str

    @property
    def n_classes(self) -> int:
        """Number of classes (outputs of the head)."""
        return len(self.classes)

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return len(self.x_train)

    def train_batch(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The training inputs ``idx`` (images need no randomness; video clips draw their frame windows)."""
        return self.x_train[idx]


def split_indices(ds: Dataset, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The dataset's own train/test split when it has a test part, else a stratified seeded split."""
    splits = np.array([it.split or "" for it in ds.items])
    if (splits == "test").any():
        return np.flatnonzero(splits != "test"), np.flatnonzero(splits == "test"), "dataset"
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError("test_fraction", test_fraction, "must be between 0 and 1")
    labels = ds.labels
    idx = np.arange(len(ds))
    counts = np.unique(labels, return_counts=True)[1]
    stratify = labels if counts.min() >= 2 and round(len(idx) * test_fraction) >= len(counts) else None
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test), f"stratified {test_fraction:.2f}" if stratify is not None else "random"


def target_size(ds: Dataset, input_size: str | int, max_edge: int, probe: int = 256, seed: int = 0,
                ) -> tuple[int, int]:
    """Seed 000's adaptive size (mean size of up to ``probe`` images, longer edge <= max_edge) or a fixed side."""
    if input_size != "adaptive":
        return int(input_size), int(input_size)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ds))[:probe]
    sizes = []
    for _, img in ds.iter_readable([int(i) for i in order]):
        sizes.append(img.shape[:2])
    if not sizes:
        raise DatasetError(ds.root, "no readable images to measure the input size")
    mean_h, mean_w = np.mean(sizes, axis=0)
    return adaptive_size(float(mean_h), float(mean_w), max_edge)


def _decode(ds: Dataset, indices: np.ndarray, size: tuple[int, int], progress: bool, what: str,
            ) -> tuple[np.ndarray, np.ndarray]:
    """Decode and resize ``indices``; unreadable images are skipped (recorded on ``ds``) or raise if strict."""
    out = np.empty((len(indices), size[0], size[1], 3), dtype=np.uint8)
    kept: list[int] = []
    for i in tqdm(indices, desc=f"decode {what}", unit="img", disable=not progress):
        try:
            img = ds.load(int(i))
        except UnreadableImageError as exc:
            if ds.strict:
                raise
            ds.note_skipped(exc)
            continue
        out[len(kept)] = resize_rgb(img, size)
        kept.append(int(i))
    return out[: len(kept)], np.asarray(kept, dtype=np.int64)


def prepare(ds: Dataset, input_size: str | int = "adaptive", max_edge: int = 128, test_fraction: float = 0.2,
            seed: int = 0, use_cache: bool = True, progress: bool = False) -> PreparedData:
    """Split, check and decode a dataset for training; every data problem is raised before training starts.

    A video dataset goes to :func:`finetune.video_data.prepare_video` (``max_edge`` does not apply to clips).
    """
    if ds.modality == "video":
        from finetune.video_data import prepare_video  # imports this module

        return prepare_video(ds, input_size, test_fraction, seed, use_cache=use_cache, progress=progress)
    train_idx, test_idx, source = split_indices(ds, test_fraction, seed)
    size = target_size(ds, input_size, max_edge, seed=seed)
    path = _cache_file(ds, size, test_fraction, seed) if use_cache else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as data:
            x_train, kept_train, x_test, kept_test = (data[k] for k in ("x_train", "i_train", "x_test", "i_test"))
    else:
        x_train, kept_train = _decode(ds, train_idx, size, progress, "train")
        x_test, kept_test = _decode(ds, test_idx, size, progress, "test")
        if path is not None:
            atomic_savez(path, x_train=x_train, i_train=kept_train, x_test=x_test, i_test=kept_test)
    labels = ds.labels
    check_split(ds, labels[kept_train], labels[kept_test])
    classes = sorted(str(c) for c in set(labels[kept_train]))
    lookup = {c: k for k, c in enumerate(classes)}
    return PreparedData(x_train=x_train, y_train=np.array([lookup[c] for c in labels[kept_train]], dtype=np.int64),
                        x_test=x_test, y_test=np.array([lookup[c] for c in labels[kept_test]], dtype=np.int64),
                        classes=classes, size=size, split_source=source)


def check_split(ds: Dataset, train_labels: np.ndarray, test_labels: np.ndarray) -> None:
    """Refuse an empty split, a test class never seen in training, or a single-class training set."""
    if not len(train_labels):
        raise DatasetError(ds.root, "the train split is empty")
    if not len(test_labels):
        raise DatasetError(ds.root, "the test split is empty")
    missing = sorted(str(c) for c in set(test_labels) - set(train_labels))
    if missing:
        raise DatasetError(ds.root, f"class(es) {missing[:5]} appear in the test split but not in train")
    if len(set(train_labels)) < 2:
        raise DatasetError(ds.root, "the train split has a single class")


def _cache_file(ds: Dataset, size: tuple[int, int], test_fraction: float, seed: int) -> Path:
    """Decoded train/test arrays of a dataset at a size and split: derived data, safe to delete."""
    return (cache_dir() / "train" /
            f"{content_hash(ds)[:20]}-{size[0]}x{size[1]}-tf{test_fraction:g}-s{seed}.npz")
