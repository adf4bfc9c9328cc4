"""Decode one image file into an RGB uint8 array, and resize per seed 000's adaptive policy."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from metafeatures.errors import UnreadableImageError, UnsupportedFileError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)


def check_extension(path: Path) -> None:
    """Raise UnsupportedFileError unless ``path`` has an image extension metarec reads."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise UnsupportedFileError(path, f"unknown image extension {path.suffix!r}")


def _high_depth_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale a 16-bit, 32-bit integer or float single-channel array to 0..255."""
    if arr.dtype.kind == "f":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        return np.clip(np.nan_to_num(scaled) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    arr = arr.astype(np.int64)
    top = 255 if arr.max(initial=0) <= 255 else 65535
    return np.clip((arr * 255 + top // 2) // top, 0, 255).astype(np.uint8)


def to_rgb_array(im: Image.Image) -> np.ndarray:
    """Convert any Pillow image (grey, palette, RGBA, 16-bit, CMYK, ...) to an (H, W, 3) uint8 array."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        grey = _high_depth_to_uint8(np.asarray(im))
        return np.repeat(grey[:, :, None], 3, axis=2)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()


def _decode(source: Path | BinaryIO, name: Path | str) -> np.ndarray:
    """Open, check the pixel count against Pillow's bomb limit (explicitly: thread-safe), decode, convert."""
    try:
        with Image.open(source) as im:
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and im.width * im.height > limit:
                raise UnreadableImageError(name, f"exceeds Pillow's decompression-bomb limit ({im.width}x{im.height} "
                                                 f"pixels > {limit})")
            im.load()
            return to_rgb_array(im)
    except Image.DecompressionBombError as exc:
        raise UnreadableImageError(name, f"exceeds Pillow's decompression-bomb limit ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImageError(name, f"cannot decode image: {exc}") from exc


def decode_image(path: Path) -> np.ndarray:
    """Fully decode ``path`` to (H, W, 3) uint8; raise a typed error naming the file on any problem."""
    check_extension(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableImageError(path, f"cannot open: {exc.strerror or exc}") from exc
    if size == 0:
        raise UnreadableImageError(path, "empty file (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # _decode refuses those images itself
        return _decode(path, path)


def decode_image_bytes(data: bytes, name: str) -> np.ndarray:
    """Like :func:`decode_image` for an uploaded file's bytes (``name`` gives the extension and the error's name)."""
    check_extension(Path(name))
    if not data:
        raise UnreadableImageError(name, "empty file (0 bytes)")
    return _decode(io.BytesIO(data), name)


def adaptive_size(mean_height: float, mean_width: float, max_edge: int = 128) -> tuple[int, int]:
    """Seed 000's target size: the dataset's average size, longer edge capped at ``max_edge``."""
    if max_edge < 1:
        raise ValueError(f"max_edge must be >= 1, got {max_edge}")
    h, w = max(1.0, mean_height), max(1.0, mean_width)
    scale = min(1.0, max_edge / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_rgb(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 array to ``size`` = (height, width) with bilinear filtering."""
    height, width = size
    if arr.shape[0] == height and arr.shape[1] == width:
        return arr
    im = Image.fromarray(arr)
    return np.asarray(im.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)


def array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """Turn an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 array into (H, W, 3)."""
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    channels = arr.shape[2]
    if channels == 1:
        return np.repeat(arr, 3, axis=2)
    if channels == 4:
        return np.ascontiguousarray(arr[:, :, :3])
    return arr
