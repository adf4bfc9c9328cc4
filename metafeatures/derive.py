"""ZAP-style derived datasets: seeded variants of a source dataset (class subsets, shots, imbalance,
resolution, grey/colour, crops, noise), each written as an image folder that records its group (the
source) and its derivation parameters in a hidden ``.derivation.json``.

A meta-dataset needs many datasets, and honest evaluation needs to know which ones are siblings: every
variant of one source shares its ``group``. Variants are deterministic: the same source, seed and index
give the same bytes. Video sources give image datasets of single frames, or of three frames stacked as
the colour channels (so motion becomes colour).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from metafeatures.datasets import Dataset, open_collection, open_dataset
from metafeatures.demo import DemoInfo, _occupied, _to_uint8, write_atomically
from metafeatures.errors import ArtifactError, ConfigError, OutputExistsError
from metafeatures.summary import content_hash

DERIVATION_FORMAT_VERSION = 1
DERIVATION_FILE = ".derivation.json"  # hidden: a collection reader never takes it for a class
MAX_VARIANTS = 1000
MIN_SIDE, MAX_SIDE = 8, 96
Colour = Literal["keep", "grey", "false_colour"]


@dataclass(frozen=True)
class Derivation:
    """How one variant was made from its source; everything needed to make it again."""

    group: str
    source_hash: str
    seed: int
    index: int
    classes: tuple[str, ...]
    train_per_class: tuple[int, ...]
    test_per_class: int
    scale: float
    colour: Colour
    crop: float
    noise: float
    frames: Literal["single", "stacked"] | None = None
    format_version: int = DERIVATION_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Derivation:
        """Read :meth:`to_dict` output; another format version is refused."""
        if data.get("format_version") != DERIVATION_FORMAT_VERSION:
            raise ArtifactError(f"derivation format version {data.get('format_version')!r} is not supported "
                                f"(this metarec reads {DERIVATION_FORMAT_VERSION})")
        fields = dict(data)
        fields["classes"] = tuple(fields["classes"])
        fields["train_per_class"] = tuple(int(v) for v in fields["train_per_class"])
        return cls(**fields)


def read_derivation(root: Path) -> Derivation | None:
    """The derivation recorded in a dataset folder, or None for a dataset that was not derived."""
    path = Path(root) / DERIVATION_FILE
    if not path.is_file():
        return None
    try:
        return Derivation.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, TypeError, KeyError) as exc:
        raise ArtifactError(f"{path}: unreadable derivation record ({exc})") from exc


def variant_name(group: str, index: int) -> str:
    """``<group>__vNN``: siblings sort together and name their source."""
    return f"{group}__v{index:02d}"


# ------------------------------------------------------------------------------------------- parameters


def _variant_rng(seed: int, group: str, index: int) -> np.random.Generator:
    """One independent stream per (seed, source, variant): a variant does not depend on its siblings."""
    return np.random.default_rng([seed, zlib.crc32(group.encode()), index])


def _class_sizes(ds: Dataset) -> dict[str, int]:
    labels, counts = np.unique(ds.labels, return_counts=True)
    return {str(c): int(n) for c, n in zip(labels, counts, strict=True)}


def _mean_edge(ds: Dataset, rng: np.random.Generator) -> float:
    """Mean longer edge of a few images (frames for video), to keep scaled sizes within bounds."""
    picks = rng.permutation(len(ds))[:8]
    return float(np.mean([max(_load(ds, int(i)).shape[1:3] if ds.modality == "video"
                               else _load(ds, int(i)).shape[:2]) for i in picks]))


def sample_derivation(ds: Dataset, seed: int, index: int, max_images: int = 600, group: str | None = None,
                      source_hash: str | None = None) -> Derivation:
    """Draw one variant's parameters: 2-10 classes, few-shot (5-20) to all images per class, optional
    imbalance, a resolution scale, grey/colour, crops and pixel noise; total images at most ``max_images``."""
    group = group or ds.name
    rng = _variant_rng(seed, group, index)
    sizes = _class_sizes(ds)
    usable = sorted(c for c, n in sizes.items() if n >= 3)
    if len(usable) < 2:
        raise ConfigError("source", ds.name, "needs at least two classes with 3 or more items to derive variants")
    n_cls = int(rng.integers(2, min(len(usable), 10) + 1))
    classes = tuple(sorted(str(c) for c in rng.choice(usable, n_cls, replace=False)))
    smallest = min(sizes[c] for c in classes)
    test = int(max(1, min(20, smallest // 4)))
    regime = rng.choice(["few", "medium", "all"], p=[0.35, 0.35, 0.3])
    cap = max(2, min(max_images // n_cls - test, max(sizes[c] for c in classes) - 1))
    shots = {"few": int(rng.integers(5, 21)), "medium": int(rng.integers(21, 81)), "all": cap}[str(regime)]
    shots = max(2, min(shots, cap))
    ratio = 1.0 if rng.random() < 0.5 else float(rng.uniform(2.0, 10.0))
    per_class = []
    for rank, c in enumerate(rng.permutation(list(classes))):
        want = shots * ratio ** (-rank / max(1, n_cls - 1))
        per_class.append((str(c), int(max(2, min(round(want), sizes[str(c)] - test)))))
    train = tuple(n for _, n in sorted(per_class))
    edge = _mean_edge(ds, rng)
    scales = [s for s in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0) if MIN_SIDE <= s * edge <= 64]
    scale = float(rng.choice(scales)) if scales else float(np.clip(32 / edge, MIN_SIDE / edge, 64 / edge))
    colour_source = ds.modality == "video" or _is_colour_source(ds, rng)
    colour: Colour = str(rng.choice(["keep", "grey"], p=[0.6, 0.4]) if colour_source
                         else rng.choice(["keep", "false_colour"], p=[0.7, 0.3]))  # type: ignore[assignment]
    crop = 1.0 if rng.random() < 0.5 else round(float(rng.uniform(0.6, 0.95)), 3)
    noise = 0.0 if rng.random() < 0.7 else round(float(rng.uniform(5.0, 40.0)), 2)
    frames = str(rng.choice(["single", "stacked"])) if ds.modality == "video" else None
    return Derivation(group=group, source_hash=source_hash or content_hash(ds), seed=seed, index=index,
                      classes=classes, train_per_class=train, test_per_class=test, scale=scale, colour=colour,
                      crop=crop, noise=noise, frames=frames)  # type: ignore[arg-type]


def _is_colour_source(ds: Dataset, rng: np.random.Generator) -> bool:
    for i in rng.permutation(len(ds))[:8]:
        img = _load(ds, int(i))
        if not (np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])):
            return True
    return False


# --------------------------------------------------------------------------------------------- writing


def _load(ds: Dataset, index: int) -> np.ndarray:
    """An image (H, W, 3) or, for video, all frames of a clip (T, H, W, 3)."""
    return ds.load_clip(index).frames if ds.modality == "video" else ds.load(index)


def _from_clip(frames: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """One frame of a clip, or three frames (a quarter of the clip apart) stacked as R, G, B."""
    t = len(frames)
    if mode == "single":
        return frames[int(rng.integers(t))]
    gap = max(1, t // 4)
    start = int(rng.integers(max(1, t - 2 * gap)))
    grey = frames.astype(np.float64).mean(axis=3)
    return _to_uint8(np.stack([grey[min(start + k * gap, t - 1)] for k in range(3)], axis=-1))


def _transform(img: np.ndarray, d: Derivation, rng: np.random.Generator, palette: np.ndarray) -> np.ndarray:
    """Crop, rescale, add noise to and recolour one (H, W, 3) uint8 image."""
    h, w = img.shape[:2]
    if d.crop < 1.0:
        ch, cw = max(2, round(h * d.crop)), max(2, round(w * d.crop))
        y0, x0 = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        img = img[y0:y0 + ch, x0:x0 + cw]
        h, w = ch, cw
    size = (int(np.clip(round(w * d.scale), MIN_SIDE, MAX_SIDE)), int(np.clip(round(h * d.scale), MIN_SIDE, MAX_SIDE)))
    out = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR), dtype=np.float64)
    if d.noise > 0:
        out = out + rng.normal(0.0, d.noise, out.shape)
    if d.colour == "grey":
        out = np.repeat(out.mean(axis=2, keepdims=True), 3, axis=2)
    elif d.colour == "false_colour":
        out = palette[np.clip(np.rint(out.mean(axis=2)), 0, 255).astype(np.int64)]
    return _to_uint8(out)


def _palette(rng: np.random.Generator) -> np.ndarray:
    """A random smooth 256-entry colour map (grey level → RGB) for ``false_colour``."""
    stops = rng.uniform(0, 255, (4, 3))
    x = np.linspace(0, 3, 256)
    return np.stack([np.interp(x, np.arange(4), stops[:, k]) for k in range(3)], axis=1)


def _pick(ds: Dataset, d: Derivation, rng: np.random.Generator) -> list[tuple[str, str, int]]:
    """(split, class, item index) of every item the variant uses: a disjoint test part per class first."""
    labels = ds.labels
    picks: list[tuple[str, str, int]] = []
    for cls, n_train in zip(d.classes, d.train_per_class, strict=True):
        pool = rng.permutation(np.flatnonzero(labels == cls))
        picks += [("test", cls, int(i)) for i in pool[: d.test_per_class]]
        picks += [("train", cls, int(i)) for i in pool[d.test_per_class: d.test_per_class + n_train]]
    return picks


def write_variant(ds: Dataset, d: Derivation, out: Path) -> DemoInfo:
    """Write variant ``d`` of ``ds`` as ``out/{train,test}/<class>/NNNNN.png`` plus ``.derivation.json``."""
    if d.source_hash != content_hash(ds):
        raise ArtifactError(f"{ds.root}: content hash differs from the derivation's source {d.source_hash[:12]}")
    rng = _variant_rng(d.seed, d.group, d.index + MAX_VARIANTS)  # pixel randomness, apart from the parameters

    def make(root: Path, _: np.random.Generator) -> DemoInfo:
        palette = _palette(rng)
        counts: dict[str, int] = {}
        for k, (split, cls, i) in enumerate(_pick(ds, d, rng)):
            img = _load(ds, i)
            if d.frames is not None:
                img = _from_clip(img, d.frames, rng)
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_transform(img, d, rng, palette)).save(folder / f"{k:05d}.png", format="PNG")
            counts[cls] = counts.get(cls, 0) + 1
        (root / DERIVATION_FILE).write_text(json.dumps(d.to_dict(), indent=1, sort_keys=True), encoding="utf-8")
        return DemoInfo(name=root.name, layout="image folder with train/ and test/ (PNG)",
                        source=f"derived from {d.group}", licence="as its source", n_images=sum(counts.values()),
                        class_counts=counts)

    return write_atomically(out, make, rng, is_dir=True)


def derive_dataset(source: str | Path | Dataset, out: Path, n: int, seed: int = 0, max_images: int = 600,
                   overwrite: bool = False, group: str | None = None) -> list[Path]:
    """Write ``n`` variants of one source into the collection folder ``out``; return their paths."""
    if not 1 <= n <= MAX_VARIANTS:
        raise ConfigError("n", n, f"must be between 1 and {MAX_VARIANTS}")
    if not 20 <= max_images <= 100_000:
        raise ConfigError("max_images", max_images, "must be between 20 and 100000")
    ds = source if isinstance(source, Dataset) else open_dataset(source)
    group = group or ds.name
    targets = [Path(out) / variant_name(group, k) for k in range(n)]
    taken = [t for t in targets if _occupied(t)]
    if taken and not overwrite:
        raise OutputExistsError(taken[0], f"{len(taken)} variant(s) of {group} already exist; pass overwrite")
    Path(out).mkdir(parents=True, exist_ok=True)
    source_hash = content_hash(ds)
    for k, target in enumerate(targets):
        write_variant(ds, sample_derivation(ds, seed, k, max_images, group, source_hash), target)
    return targets


def derive_collection(collection: str | Path | dict[str, Dataset], out: Path, n: int, seed: int = 0,
                      max_images: int = 600, overwrite: bool = False, only: Sequence[str] | None = None,
                      n_for: dict[str, int] | None = None, progress: bool = False) -> list[Path]:
    """``n`` variants (or ``n_for[name]``) of every dataset of a collection (or those in ``only``)."""
    from tqdm import tqdm

    sources = collection if isinstance(collection, dict) else open_collection(collection)
    names = sorted(sources) if only is None else list(only)
    unknown = sorted(set(names) - set(sources))
    if unknown:
        raise ConfigError("only", unknown, f"not in the collection; it has {', '.join(sorted(sources))}")
    paths: list[Path] = []
    for name in tqdm(names, desc="derive", unit="source", disable=not progress):
        paths += derive_dataset(sources[name], out, (n_for or {}).get(name, n), seed, max_images, overwrite, name)
    return paths




META_SOURCES_DIR = ".sources"  # hidden inside the meta-collection: the demo sources are not members
DEFAULT_PER_IMAGE_SOURCE = 4
DEFAULT_PER_VIDEO_SOURCE = 2


def build_meta_collection(out: Path, seed: int = 0, per_image_source: int = DEFAULT_PER_IMAGE_SOURCE,
                          per_video_source: int = DEFAULT_PER_VIDEO_SOURCE, max_images: int = 600,
                          overwrite: bool = False, progress: bool = False) -> list[Path]:
    """The default meta-collection: the offline demo sources (10 image, 4 video) generated into
    ``out/.sources`` and ``per_*_source`` variants of each derived into ``out`` (default 48 datasets,
    14 groups)."""
    from metafeatures.demo import DEMO_DATASETS, generate_demo_collection
    from metafeatures.demo_video import VIDEO_DEMO_DATASETS, generate_video_demo

    for field, value in (("per_image_source", per_image_source), ("per_video_source", per_video_source)):
        if not 0 <= value <= MAX_VARIANTS:
            raise ConfigError(field, value, f"must be between 0 and {MAX_VARIANTS}")
    out = Path(out)
    sources = out / META_SOURCES_DIR
    if not (sources / ".README.txt").is_file() or overwrite:
        generate_demo_collection(sources, seed=seed, progress=progress, overwrite=True)
    if not (sources / ".README.video.txt").is_file() or overwrite:
        generate_video_demo(sources, seed=seed, progress=progress, overwrite=True)
    n_for = {**dict.fromkeys(DEMO_DATASETS, per_image_source), **dict.fromkeys(VIDEO_DEMO_DATASETS, per_video_source)}
    names = [name for name, k in n_for.items() if k > 0]
    return derive_collection(sources, out, n=0, seed=seed, max_images=max_images, overwrite=overwrite,
                             only=names, n_for=n_for, progress=progress)


__all__ = ["DERIVATION_FILE", "Derivation", "build_meta_collection", "derive_collection", "derive_dataset",
           "read_derivation", "sample_derivation", "variant_name", "write_variant"]
