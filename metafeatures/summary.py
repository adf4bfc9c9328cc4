"""Scan a dataset once (decode every image or clip) into a validated summary with a content hash."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer
from tqdm import tqdm

from metafeatures import _npz
from metafeatures.datasets import Dataset, Skipped
from metafeatures.errors import EmptyDatasetError, SingleClassError, UnreadableImageError
from metafeatures.images import adaptive_size
from metafeatures.paths import file_sha256
from metafeatures.video import FRAME_POLICY, dataset_window, frame_size


class SkippedFile(BaseModel):
    """A file that was left out and why."""

    path: str
    reason: str


class VideoStats(BaseModel):
    """What only a video dataset has: frames per clip, frame rate, and the frame policy its models use."""

    model_config = ConfigDict(frozen=True)

    frames_mean: float
    frames_min: int
    frames_max: int
    fps_mean: float | None
    clips_with_fps: int
    window: str
    frame_policy: str = FRAME_POLICY


class DatasetSummary(BaseModel):
    """What a user needs to know about a dataset before matching or training on it."""

    model_config = ConfigDict(frozen=True)

    name: str
    modality: str = "image"
    layout: str
    n_items: int
    n_classes: int
    class_counts: dict[str, int]
    split_counts: dict[str, int]
    mean_height: float
    mean_width: float
    std_height: float
    std_width: float
    min_height: int
    max_height: int
    min_width: int
    max_width: int
    channels: int
    target_size: tuple[int, int]
    content_hash: str
    skipped: int
    skipped_files: list[SkippedFile]
    video: VideoStats | None = None
    group: str | None = None
    derivation: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _drop_empty_video(self, handler: SerializerFunctionWrapHandler) -> dict:
        """Summaries serialise exactly as before video and derived datasets (no ``video: null``,
        ``group: null`` or ``derivation: null`` entries)."""
        data = handler(self)
        for key in ("video", "group", "derivation"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


def content_hash(ds: Dataset) -> str:
    """sha256 over every listed item's path, label, split and file bytes (npz: the file's bytes; a clip
    folder: its frame files' names and bytes)."""
    if ds.layout == "npz":
        return file_sha256(ds.root)
    digest = hashlib.sha256()
    for item in ds.items:
        path = ds.path_of(item)
        data = file_sha256(path) if path.is_file() else _folder_sha256(path) if path.is_dir() else "missing"
        digest.update(f"{item.source}\0{item.label}\0{item.split}\0{data}\n".encode())
    return digest.hexdigest()


def _folder_sha256(folder: Path) -> str:
    """sha256 over a clip folder's non-hidden files (names and contents, in name order)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{file.name}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def summarize(ds: Dataset, max_edge: int = 128, progress: bool = False) -> DatasetSummary:
    """Decode every image of ``ds`` (skipping or raising on bad files per ``ds.strict``) and summarise."""
    if ds.layout == "npz":
        return _summarize_npz(ds, max_edge)
    if ds.modality == "video":
        return _summarize_video(ds, max_edge, progress)
    heights: list[int] = []
    widths: list[int] = []
    kept: list[int] = []
    colour = False
    for i, img in _readable(ds, ds.load, "img", progress):
        kept.append(i)
        heights.append(img.shape[0])
        widths.append(img.shape[1])
        colour = colour or _is_colour(img)
    items = [ds.items[i] for i in kept]
    return _build(ds, items, np.array(heights), np.array(widths), 3 if colour else 1,
                  content_hash(ds), max_edge)


def _readable(ds: Dataset, load: Callable[[int], Any], unit: str, progress: bool) -> Iterator[tuple[int, Any]]:
    """(index, decoded item) for every item that decodes; a bad one is skipped and reported, or raised if strict."""
    for i, _ in enumerate(tqdm(ds.items, desc=f"scan {ds.name}", unit=unit, disable=not progress)):
        try:
            value = load(i)
        except UnreadableImageError as exc:
            if ds.strict:
                raise
            ds.note_skipped(exc)
            continue
        yield i, value


def _is_colour(pixels: np.ndarray) -> bool:
    """True unless the three channels of (..., 3) pixels are identical (a grey image or clip)."""
    return not (np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2]))


def _summarize_video(ds: Dataset, max_edge: int, progress: bool) -> DatasetSummary:
    """Decode every clip fully: clips, frames per clip, frame sizes, fps; bad clips skipped or raised."""
    heights: list[int] = []
    widths: list[int] = []
    lengths: list[int] = []
    fps: list[float] = []
    kept: list[int] = []
    colour = False
    for i, clip in _readable(ds, ds.load_clip, "clip", progress):
        kept.append(i)
        frames = clip.frames
        lengths.append(len(frames))
        heights.append(frames.shape[1])
        widths.append(frames.shape[2])
        if clip.fps is not None:
            fps.append(clip.fps)
        colour = colour or _is_colour(frames)
    items = [ds.items[i] for i in kept]
    summary = _build(ds, items, np.array(heights), np.array(widths), 3 if colour else 1, content_hash(ds), max_edge)
    stats = VideoStats(frames_mean=round(float(np.mean(lengths)), 3), frames_min=int(min(lengths)),
                       frames_max=int(max(lengths)), fps_mean=round(float(np.mean(fps)), 3) if fps else None,
                       clips_with_fps=len(fps), window=dataset_window(lengths).describe())
    size = frame_size(summary.mean_height, summary.mean_width)
    return summary.model_copy(update={"modality": "video", "video": stats, "target_size": size})


def _summarize_npz(ds: Dataset, max_edge: int) -> DatasetSummary:
    """npz images all share one size; the hash covers the whole file."""
    shape, _ = _npz.read_header(ds.root, "x")
    n = len(ds.items)
    channels = 1 if len(shape) == 3 or shape[3] == 1 else 3
    return _build(ds, ds.items, np.full(n, shape[1]), np.full(n, shape[2]), channels,
                  file_sha256(ds.root), max_edge)


def _build(ds: Dataset, items: list, heights: np.ndarray, widths: np.ndarray, channels: int,
           content_hash: str, max_edge: int) -> DatasetSummary:
    """Assemble the summary after refusing an empty or single-class result."""
    if not items:
        raise EmptyDatasetError(ds.root, f"no readable images ({len(ds.skipped)} file(s) skipped)")
    counts = Counter(it.label for it in items)
    if len(counts) < 2:
        raise SingleClassError(ds.root, f"only one readable class ({next(iter(counts))!r}); need at least two")
    splits = Counter(it.split or "unsplit" for it in items)
    derivation = _derivation(ds)
    mean_h, mean_w = float(heights.mean()), float(widths.mean())
    return DatasetSummary(
        name=ds.name, layout=ds.layout, n_items=len(items), n_classes=len(counts),
        class_counts=dict(sorted(counts.items())), split_counts=dict(sorted(splits.items())),
        mean_height=round(mean_h, 3), mean_width=round(mean_w, 3),
        std_height=round(float(heights.std()), 3), std_width=round(float(widths.std()), 3),
        min_height=int(heights.min()), max_height=int(heights.max()),
        min_width=int(widths.min()), max_width=int(widths.max()),
        channels=channels, target_size=adaptive_size(mean_h, mean_w, max_edge),
        content_hash=content_hash, skipped=len(ds.skipped),
        skipped_files=[SkippedFile(path=s.path, reason=s.reason) for s in ds.skipped],
        group=derivation.group if derivation else None, derivation=derivation.to_dict() if derivation else None,
    )


def _derivation(ds: Dataset) -> Any:
    """The derivation record of a derived dataset folder (``metafeatures.derive``), else None."""
    if ds.layout != "folder":
        return None
    from metafeatures.derive import read_derivation  # derive imports this module

    return read_derivation(ds.root)


__all__ = ["DatasetSummary", "Skipped", "SkippedFile", "VideoStats", "content_hash", "summarize"]
