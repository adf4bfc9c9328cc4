"""Video clips: decode frame folders and video files, and seed 000 §II.B's frame selection policy.

A clip is either a folder of frames (image files, taken in name order) or one video file decoded with
PyAV (its wheels bundle FFmpeg, so nothing else needs installing). Clips are decoded lazily, one at a
time, to (T, H, W, 3) uint8 arrays; callers cache what they select.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metafeatures.errors import UnreadableClipError, UnreadableImageError
from metafeatures.images import IMAGE_EXTENSIONS, decode_image

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".webm"})
SHORT_CLIP_MAX_FRAMES = 48  # seed 000 §II.B: clips of at most 48 frames are "short"
RESIZE_ABOVE = 90  # frames larger than 90x90 ...
RESIZED_EDGE = 80  # ... are resized to 80x80


def is_video_file(path: Path) -> bool:
    """True for a file with a video extension metarec decodes."""
    return path.suffix.lower() in VIDEO_EXTENSIONS


def is_clip_folder(path: Path) -> bool:
    """True for a folder holding at least one (non-hidden) image file: a clip given as frames."""
    return path.is_dir() and any(_frame_files(path))


def _frame_files(folder: Path) -> list[Path]:
    """Non-hidden files of a clip folder, sorted by name (the frame order)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


@dataclass(frozen=True)
class Clip:
    """A decoded clip: frames (T, H, W, 3) uint8 and the frame rate when the container states one."""

    frames: np.ndarray
    fps: float | None = None


def read_clip(path: Path) -> Clip:
    """Decode every frame of a clip folder or video file; UnreadableClipError names the clip and the problem."""
    if path.is_dir():
        frames = _read_frame_folder(path)
        fps = None
    elif is_video_file(path):
        frames, fps = _read_video_file(path)
    else:
        raise UnreadableClipError(path, "not a clip: expected a folder of frames or a .mp4/.avi/.webm file")
    if not frames:
        raise UnreadableClipError(path, "the clip has zero frames")
    first = frames[0].shape
    for k, frame in enumerate(frames):
        if frame.shape != first:
            raise UnreadableClipError(path, f"mixed frame sizes inside the clip: {first[1]}x{first[0]} (frame 0) "
                                            f"and {frame.shape[1]}x{frame.shape[0]} (frame {k})")
    return Clip(np.stack(frames), fps)


def _read_frame_folder(folder: Path) -> list[np.ndarray]:
    """Decode a folder's frames in name order; a non-image or unreadable frame makes the clip unreadable."""
    frames = []
    for file in _frame_files(folder):
        if file.suffix.lower() not in IMAGE_EXTENSIONS:
            raise UnreadableClipError(folder, f"frame file {file.name!r} has no image extension")
        try:
            frames.append(decode_image(file))
        except UnreadableImageError as exc:
            raise UnreadableClipError(folder, f"frame {file.name}: {exc.problem}") from exc
    return frames


def _read_video_file(path: Path) -> tuple[list[np.ndarray], float | None]:
    """Decode a video file's first video stream with PyAV (FFmpeg) to RGB frames."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a dependency
        raise UnreadableClipError(path, "decoding video files needs PyAV (pip install av)") from exc
    if path.stat().st_size == 0:
        raise UnreadableClipError(path, "empty file (0 bytes)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UnreadableClipError(path, "the file has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate
            fps = float(rate) if rate else None
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except UnreadableClipError:
        raise
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise UnreadableClipError(path, f"cannot decode video: {exc}") from exc
    return frames, fps


VIDEO_CODECS = {".mp4": "mpeg4", ".avi": "mpeg4", ".webm": "libvpx"}  # encoders every PyAV wheel bundles


def write_video(path: Path, frames: np.ndarray, fps: int = 12, quality: int = 3) -> Path:
    """Encode (T, H, W, 3) uint8 frames (even H and W) into ``path`` (.mp4/.avi: MPEG-4 part 2, .webm: VP8)."""
    import av

    codec = VIDEO_CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"cannot write {path.suffix!r}; writable: {', '.join(sorted(VIDEO_CODECS))}")
    if (frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8
            or frames.shape[1] % 2 or frames.shape[2] % 2):
        raise ValueError(f"frames must be (T, H, W, 3) uint8 with even H and W, got {frames.shape} {frames.dtype}")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        if not isinstance(stream, av.VideoStream):  # pragma: no cover - the codecs above are video codecs
            raise TypeError(f"{codec} did not give a video stream")
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.thread_count = 1  # one thread: the encoded bytes do not depend on scheduling
        stream.options = {"qscale": str(quality)} if codec == "mpeg4" else {"crf": "10", "b": "1M"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@dataclass(frozen=True)
class FrameWindow:
    """Which frames a model sees per clip: ``frames`` frames ``stride`` apart, fused by a temporal kernel."""

    frames: int
    stride: int
    kernel: int

    @property
    def span(self) -> int:
        """Frames a window covers from its first to its last selected frame."""
        return (self.frames - 1) * self.stride + 1

    def describe(self) -> str:
        """Compact text form, e.g. ``4x1/k3``."""
        return f"{self.frames}x{self.stride}/k{self.kernel}"


SHORT_WINDOW = FrameWindow(frames=4, stride=1, kernel=3)
LONG_WINDOW = FrameWindow(frames=8, stride=4, kernel=7)
FRAME_POLICY = (f"seed000: <= {SHORT_CLIP_MAX_FRAMES} frames {SHORT_WINDOW.describe()}, "
                f"longer {LONG_WINDOW.describe()}; eval start centre; frames >{RESIZE_ABOVE}px -> "
                f"{RESIZED_EDGE}x{RESIZED_EDGE}")


def window_for(n_frames: float) -> FrameWindow:
    """Seed 000 §II.B: ≤ 48 frames → 4 consecutive frames, kernel 3; longer → 8 frames stride 4, kernel 7."""
    if n_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {n_frames}")
    return SHORT_WINDOW if n_frames <= SHORT_CLIP_MAX_FRAMES else LONG_WINDOW


def dataset_window(lengths: Sequence[int]) -> FrameWindow:
    """One window per dataset (the model's temporal kernel is fixed): the rule applied to the median length."""
    if not len(lengths):
        raise ValueError("no clip lengths to choose a frame window from")
    return window_for(float(np.median(np.asarray(lengths))))


def select_frames(n_frames: int, window: FrameWindow, rng: np.random.Generator | None = None) -> np.ndarray:
    """Frame indices of one window: a random start when ``rng`` is given (training), else the centred start.

    A clip shorter than the window's span starts at 0 and repeats its last frame to fill the window.
    """
    if n_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {n_frames}")
    room = max(0, n_frames - window.span)
    start = int(rng.integers(0, room + 1)) if rng is not None else room // 2
    return np.minimum(start + window.stride * np.arange(window.frames), n_frames - 1)


def frame_size(mean_height: float, mean_width: float) -> tuple[int, int]:
    """Training frame size: 80x80 when frames exceed 90x90 (seed 000), else the dataset's mean frame size."""
    if mean_height > RESIZE_ABOVE or mean_width > RESIZE_ABOVE:
        return RESIZED_EDGE, RESIZED_EDGE
    return max(1, round(mean_height)), max(1, round(mean_width))


__all__ = [
    "FRAME_POLICY", "LONG_WINDOW", "SHORT_WINDOW", "VIDEO_EXTENSIONS", "Clip", "FrameWindow", "dataset_window",
    "frame_size", "is_clip_folder", "is_video_file", "read_clip", "select_frames", "window_for", "write_video",
]
