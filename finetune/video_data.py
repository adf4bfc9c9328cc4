"""Training data of a video dataset: clips decoded once at the frame size, frames picked per seed 000 §II.B.

Training clips keep all their frames (ragged, one array for the whole split) so every batch can draw a
random window start; test clips keep only their centred window, so evaluation is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from finetune.data import PreparedData, check_split, split_indices
from metafeatures.datasets import Dataset
from metafeatures.errors import DatasetError, UnreadableImageError
from metafeatures.images import resize_rgb
from metafeatures.paths import atomic_savez, cache_dir
from metafeatures.summary import content_hash
from metafeatures.video import FrameWindow, dataset_window, frame_size, select_frames

PROBE_CLIPS = 16


@dataclass
class VideoData(PreparedData):
    """PreparedData for clips: ``x_train`` holds every training frame (F, H, W, 3), clip ``i`` being
    ``x_train[offsets[i]:offsets[i+1]]``; ``x_test`` is (N, T, H, W, 3) with the centred window."""

    offsets: np.ndarray | None = None
    window: FrameWindow | None = None

    @property
    def n_train(self) -> int:
        """Number of training clips."""
        return len(self.offsets) - 1 if self.offsets is not None else 0

    def train_batch(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Clips ``idx`` as (B, T, H, W, 3), each window starting at a random frame (seed 000's training)."""
        assert self.offsets is not None and self.window is not None
        rows = [self.offsets[i] + select_frames(int(self.offsets[i + 1] - self.offsets[i]), self.window, rng)
                for i in idx]
        return self.x_train[np.stack(rows)]


def _decode_clips(ds: Dataset, indices: np.ndarray, size: tuple[int, int], progress: bool, what: str,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode and resize clips; returns all frames, per-clip offsets and the kept indices (bad clips skipped)."""
    frames: list[np.ndarray] = []
    offsets = [0]
    kept: list[int] = []
    for i in tqdm(indices, desc=f"decode {what}", unit="clip", disable=not progress):
        try:
            clip = ds.load_clip(int(i)).frames
        except UnreadableImageError as exc:
            if ds.strict:
                raise
            ds.note_skipped(exc)
            continue
        frames.extend(resize_rgb(f, size) for f in clip)
        offsets.append(offsets[-1] + len(clip))
        kept.append(int(i))
    stacked = np.stack(frames) if frames else np.zeros((0, size[0], size[1], 3), np.uint8)
    return stacked, np.asarray(offsets, dtype=np.int64), np.asarray(kept, dtype=np.int64)


def video_frame_size(ds: Dataset, input_size: str | int, seed: int = 0) -> tuple[int, int]:
    """A fixed square side, or seed 000's rule on the mean frame size of up to PROBE_CLIPS clips."""
    if input_size != "adaptive":
        return int(input_size), int(input_size)
    order = np.random.default_rng(seed).permutation(len(ds))[:PROBE_CLIPS]
    sizes = [clip.shape[1:3] for _, clip in ds.iter_readable([int(i) for i in order])]
    if not sizes:
        raise DatasetError(ds.root, "no readable clips to measure the frame size")
    mean_h, mean_w = np.mean(sizes, axis=0)
    return frame_size(float(mean_h), float(mean_w))


def prepare_video(ds: Dataset, input_size: str | int = "adaptive", test_fraction: float = 0.2, seed: int = 0,
                  use_cache: bool = True, progress: bool = False) -> VideoData:
    """Split, decode and resize a video dataset; the frame window follows the median clip length."""
    train_idx, test_idx, source = split_indices(ds, test_fraction, seed)
    size = video_frame_size(ds, input_size, seed=seed)
    path = _cache_file(ds, size, test_fraction, seed) if use_cache else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as data:
            x_train, o_train, k_train, x_test_all, o_test, k_test = (
                data[k] for k in ("x_train", "o_train", "i_train", "x_test", "o_test", "i_test"))
    else:
        x_train, o_train, k_train = _decode_clips(ds, train_idx, size, progress, "train")
        x_test_all, o_test, k_test = _decode_clips(ds, test_idx, size, progress, "test")
        if path is not None:
            atomic_savez(path, x_train=x_train, o_train=o_train, i_train=k_train, x_test=x_test_all, o_test=o_test,
                         i_test=k_test)
    labels = ds.labels
    check_split(ds, labels[k_train], labels[k_test])
    window = dataset_window(np.concatenate([np.diff(o_train), np.diff(o_test)]).tolist())
    x_test = np.stack([x_test_all[o_test[j] + select_frames(int(o_test[j + 1] - o_test[j]), window)]
                       for j in range(len(k_test))])
    classes = sorted(str(c) for c in set(labels[k_train]))
    lookup = {c: k for k, c in enumerate(classes)}
    return VideoData(x_train=x_train, y_train=np.array([lookup[c] for c in labels[k_train]], dtype=np.int64),
                     x_test=x_test, y_test=np.array([lookup[c] for c in labels[k_test]], dtype=np.int64),
                     classes=classes, size=size, split_source=source, offsets=o_train, window=window)


def _cache_file(ds: Dataset, size: tuple[int, int], test_fraction: float, seed: int) -> Path:
    """Decoded train/test clips of a dataset at a frame size and split: derived data, safe to delete."""
    return (cache_dir() / "train" /
            f"{content_hash(ds)[:20]}-clips-{size[0]}x{size[1]}-tf{test_fraction:g}-s{seed}.npz")
