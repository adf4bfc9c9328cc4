"""Generate the offline demo collection: ten small, deliberately different image classification datasets.

Everything comes from data already installed with metarec's dependencies (scikit-learn's digits,
animal-mnist's silhouettes, scikit-image's sample images) or is drawn procedurally with numpy/PIL, so
nothing is downloaded. Output is byte-for-byte deterministic for a given seed (PNG/JPEG encoders are
deterministic, and the ``.npz`` files are written with fixed zip timestamps).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import shutil
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from metafeatures._safe_unpickle import load_pickled_array
from metafeatures.errors import DatasetError, OutputExistsError

README_NAME = ".README.txt"  # hidden: every visible entry of a collection is a dataset
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass
class DemoInfo:
    """What one generated demo dataset is: filled in by its generator, rendered into .README.txt."""

    name: str
    layout: str
    source: str
    licence: str
    n_images: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    size: str = ""
    colour: str = ""
    notes: str = ""

    def summary(self) -> str:
        """One-line description: name, layout, images, classes, size, colour."""
        return (
            f"{self.name}: {self.layout}, {self.n_images} images, {len(self.class_counts)} classes, "
            f"{self.size}, {self.colour}"
        )

    def paragraph(self) -> str:
        """README paragraph for this dataset."""
        counts = ", ".join(f"{k} {v}" for k, v in self.class_counts.items())
        return (
            f"{self.name}\n    Source: {self.source}\n    Licence: {self.licence}\n"
            f"    Layout: {self.layout}. {self.n_images} images, {self.size}, {self.colour}.\n"
            f"    Classes ({len(self.class_counts)}): {counts}.\n"
            + (f"    Notes: {self.notes}\n" if self.notes else "")
        )


# --------------------------------------------------------------------------------------------- helpers


def _rng(seed: int, name: str) -> np.random.Generator:
    """Independent random stream per dataset, so generating one dataset alone gives the same bytes."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Round and clip floats into 0..255 uint8."""
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _imbalanced_counts(total: int, n_classes: int, ratio: float) -> np.ndarray:
    """Geometrically decaying class sizes summing to ``total`` with largest/smallest about ``ratio``."""
    w = ratio ** (-np.arange(n_classes) / (n_classes - 1))
    counts = np.floor(w / w.sum() * total).astype(int)
    counts[0] += total - counts.sum()
    return counts


def _split_labels(labels: np.ndarray, test_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Stratified train/test assignment: an array of 'train'/'test' strings, one per label."""
    split = np.full(len(labels), "train", dtype="<U5")
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_test = max(1, int(round(test_fraction * len(idx))))
        split[rng.choice(idx, n_test, replace=False)] = "test"
    return split


def _save_image(path: Path, arr: np.ndarray, quality: int | None = None) -> None:
    """Write one uint8 (H,W) or (H,W,3) array as PNG, or as JPEG when ``quality`` is given."""
    im = Image.fromarray(arr)
    if quality is None:
        im.save(path, format="PNG")
    else:
        im.save(path, format="JPEG", quality=quality)


def _write_folder(root: Path, images: Sequence[np.ndarray], labels: np.ndarray, class_names: Sequence[str],
                  split: np.ndarray | None = None) -> dict[str, int]:
    """Write an image-folder dataset ``root/[split/]class/NNNNN.png``; return images per class."""
    counts = dict.fromkeys(class_names, 0)
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        cls = class_names[int(lab)]
        d = root / str(split[i]) / cls if split is not None else root / cls
        d.mkdir(parents=True, exist_ok=True)
        _save_image(d / f"{i:05d}.png", img)
        counts[cls] += 1
    return counts


def _save_npz(path: Path, compressed: bool, **arrays: np.ndarray) -> None:
    """np.savez(_compressed) equivalent with fixed zip timestamps, so the file bytes are reproducible."""
    compression = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def _class_counts(labels: np.ndarray, class_names: Sequence[str]) -> dict[str, int]:
    """Images per class name for integer labels."""
    bc = np.bincount(labels, minlength=len(class_names))
    return {c: int(n) for c, n in zip(class_names, bc, strict=True)}


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (all in 0..1) to RGB floats in 0..1, stacked on a new last axis."""
    h6 = (h % 1.0) * 6.0
    i = np.floor(h6).astype(int) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(h.shape + (3,))
    for k, (r, g, b) in enumerate(table):
        m = i == k
        out[m] = np.stack([r[m], g[m], b[m]], axis=-1)
    return out


def _power_law_noise(rng: np.random.Generator, n: int, h: int, w: int, beta: np.ndarray) -> np.ndarray:
    """``n`` zero-mean unit-variance noise images whose power spectrum falls as 1/f**beta (per image)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    spec = np.fft.fft2(rng.standard_normal((n, h, w)))
    amp = f[None] ** (-np.asarray(beta, dtype=float)[:, None, None] / 2)
    amp[:, 0, 0] = 0.0
    img = np.real(np.fft.ifft2(spec * amp))
    img -= img.mean(axis=(1, 2), keepdims=True)
    img /= img.std(axis=(1, 2), keepdims=True) + 1e-12
    return img


def _skimage_image(name: str) -> np.ndarray:
    """Load one of scikit-image's bundled sample images (offline), raising DatasetError if absent."""
    import skimage.data

    try:
        return np.asarray(getattr(skimage.data, name)())
    except Exception as exc:  # any failure means the bundled file is unusable
        raise DatasetError(f"skimage.data.{name}", f"cannot load bundled sample image: {exc}") from exc


# ------------------------------------------------------------------------------------------ generators

_SKIMAGE_CC0 = "CC0 (public-domain dedication), as stated in scikit-image's skimage.data docstrings"


def _gen_digits(root: Path, rng: np.random.Generator) -> DemoInfo:
    """scikit-learn's 8x8 handwritten digits as an uncompressed .npz with integer labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = _to_uint8(np.asarray(d.images) * (255.0 / 16.0))
    y = np.asarray(d.target, dtype=np.int64)
    _save_npz(root, compressed=False, x=x, y=y)
    return DemoInfo(
        name=root.name, layout="npz (uncompressed; x uint8 (N,8,8), y int64)",
        source="scikit-learn load_digits: the UCI ML hand-written digits test set (1,797 images)",
        licence="BSD-3-Clause (scikit-learn); data originally from the UCI Machine Learning Repository",
        n_images=len(y), class_counts=_class_counts(y, [str(i) for i in range(10)]),
        size="8x8", colour="grey", notes="pixel values rescaled from 0..16 to 0..255",
    )


_ANIMALS = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")


def _animal_mnist_dir() -> Path:
    """Folder of animal-mnist's data files, found without importing the package (it imports tensorflow)."""
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or spec.origin is None:
        raise DatasetError("animal_mnist", "package animal-mnist is not installed (pip install --no-deps)")
    return Path(spec.origin).parent / "data" / "Animal_MNIST"


def _gen_animals(root: Path, rng: np.random.Generator) -> DemoInfo:
    """animal-mnist silhouettes: an imbalanced 1,500-image subsample with train/test folders."""
    d = _animal_mnist_dir()
    x = load_pickled_array(d / "animal_data_version_3.gz")
    y = load_pickled_array(d / "animal_label_version_3.gz").astype(np.int64)
    if x.shape[1:] != (28, 28) or len(x) != len(y):
        raise DatasetError(d, f"unexpected animal-mnist arrays {x.shape} / {y.shape}")
    counts = _imbalanced_counts(1500, 10, ratio=8.0)
    order = rng.permutation(10)  # which animal gets the most images depends on the seed
    pick = [rng.choice(np.flatnonzero(y == c), counts[rank], replace=False) for rank, c in enumerate(order)]
    idx = np.sort(np.concatenate(pick))
    xs, ys = x[idx].astype(np.uint8), y[idx]
    split = _split_labels(ys, 0.2, rng)
    cc = _write_folder(root, list(xs), ys, _ANIMALS, split)
    return DemoInfo(
        name=root.name, layout="image folder with train/ and test/ (PNG)",
        source="animal-mnist 0.4 (Animal_MNIST version 3, 28x28 animal silhouettes), read with a "
        "restricted unpickler; class-imbalanced random subsample (largest/smallest class about 8:1)",
        licence="MIT (animal-mnist, Sina Mohammadi)", n_images=len(ys), class_counts=cc,
        size="28x28", colour="grey", notes="about 20% of each class in test/",
    )


def _gen_textures(root: Path, rng: np.random.Generator) -> DemoInfo:
    """Grey 32x32 patches of three skimage textures at random scale, rotation and contrast."""
    names = ("brick", "grass", "gravel")
    per_class, size = 280, 32
    images, labels = [], []
    for c, tex in enumerate(names):
        src = Image.fromarray(_skimage_image(tex))
        for _ in range(per_class):
            s = int(round(size * rng.uniform(0.75, 2.0)))
            x0, y0 = int(rng.integers(0, src.width - s)), int(rng.integers(0, src.height - s))
            patch = src.crop((x0, y0, x0 + s, y0 + s)).resize((size, size), Image.Resampling.BILINEAR)
            p = np.asarray(patch, dtype=np.float64)
            p = np.rot90(p, int(rng.integers(4)))
            if rng.random() < 0.5:
                p = p[:, ::-1]
            p = (p - p.mean()) * rng.uniform(0.5, 1.3) + p.mean() + rng.uniform(-40, 40)
            p += rng.normal(0, rng.uniform(2, 10), p.shape)
            images.append(_to_uint8(p))
            labels.append(c)
    cc = _write_folder(root, images, np.array(labels), names)
    return DemoInfo(
        name=root.name, layout="image folder (PNG)",
        source="scikit-image sample textures brick(), grass(), gravel() (512x512 grey), cut into random "
        "patches (scale 0.75-2x, 90-degree rotations, flips, contrast/brightness jitter, noise)",
        licence=_SKIMAGE_CC0, n_images=len(labels), class_counts=cc, size="32x32", colour="grey",
    )


def _gen_photo_patches(root: Path, rng: np.random.Generator) -> DemoInfo:
    """Colour JPEG patches of varying size from six skimage photos, listed in a CSV manifest."""
    sources = ("coffee", "chelsea", "astronaut", "rocket", "immunohistochemistry", "hubble_deep_field")
    per_class = 150
    img_dir = root / "images"
    img_dir.mkdir(parents=True)
    rows, labels, sizes = [], [], []
    i = 0
    for c, name in enumerate(sources):
        src = Image.fromarray(_skimage_image(name)[..., :3])
        for _ in range(per_class):
            h, w = (int(v) for v in rng.integers(24, 65, size=2))
            s = rng.uniform(1.0, 3.0)
            ch, cw = min(int(h * s), src.height), min(int(w * s), src.width)
            x0, y0 = int(rng.integers(0, src.width - cw + 1)), int(rng.integers(0, src.height - ch + 1))
            patch = src.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.Resampling.BILINEAR)
            if rng.random() < 0.5:
                patch = patch.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            arr = np.asarray(patch, float) * rng.uniform(0.8, 1.2) + rng.normal(0, 3, (h, w, 3))
            rel = f"images/{i:05d}.jpg"
            _save_image(root / rel, _to_uint8(arr), quality=90)
            rows.append([rel, name])
            labels.append(c)
            sizes.append((h, w))
            i += 1
    split = _split_labels(np.array(labels), 0.2, rng)
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(["path", "label", "split"])
        wr.writerows([*r, s] for r, s in zip(rows, split, strict=True))
    hs, ws = np.array(sizes).T
    return DemoInfo(
        name=root.name, layout="CSV manifest (manifest.csv: path,label,split; JPEG files in images/)",
        source="scikit-image sample photos coffee(), chelsea(), astronaut(), rocket(), "
        "immunohistochemistry(), hubble_deep_field(); class = source photo; random crops at 1-3x scale",
        licence="coffee, chelsea: CC0 by the photographers; astronaut, rocket, hubble_deep_field: public "
        "domain (NASA / SpaceX); immunohistochemistry: no known copyright restrictions (CMMI) -- as stated "
        "in scikit-image's skimage.data docstrings",
        n_images=i, class_counts=_class_counts(np.array(labels), sources),
        size=f"varying, height {hs.min()}-{hs.max()} x width {ws.min()}-{ws.max()}", colour="RGB",
        notes="about 20% of each class marked split=test",
    )


def _regular_polygon(cx: float, cy: float, r: float, n: int, rot: float,
                     inner: float | None = None) -> list[tuple[float, float]]:
    """Vertices of a regular n-gon (or a star when ``inner`` radius ratio is given)."""
    pts = []
    k = 2 * n if inner is not None else n
    for j in range(k):
        rr = r * (inner if inner is not None and j % 2 else 1.0)
        a = rot + 2 * np.pi * j / k
        pts.append((cx + rr * np.cos(a), cy + rr * np.sin(a)))
    return pts


def _cross(cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    """Vertices of a plus-shaped cross of half-length r, rotated by ``rot``."""
    t = 0.33 * r
    base = [(-t, -r), (t, -r), (t, -t), (r, -t), (r, t), (t, t), (t, r), (-t, r), (-t, t), (-r, t), (-r, -t),
            (-t, -t)]
    c, s = np.cos(rot), np.sin(rot)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in base]


def _gen_shapes(root: Path, rng: np.random.Generator) -> DemoInfo:
    """Colour 64x64 geometric shapes on noisy gradient backgrounds with distractor lines."""
    names = ("circle", "square", "triangle", "cross", "star")
    per_class, n = 240, 64
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1)
    images, labels = [], []
    for c, shape in enumerate(names):
        for _ in range(per_class):
            c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            a = rng.uniform(0, 2 * np.pi)
            t = np.clip((np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5)) + 0.5, 0, 1)[..., None]
            bg = c0 * (1 - t) + c1 * t + rng.normal(0, 14, (n, n, 3))
            im = Image.fromarray(_to_uint8(bg))
            dr = ImageDraw.Draw(im)
            for _ in range(int(rng.integers(0, 4))):
                dr.line([tuple(rng.uniform(0, n, 2)), tuple(rng.uniform(0, n, 2))],
                        fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=int(rng.integers(1, 3)))
            r = rng.uniform(8, 22)
            cx, cy = rng.uniform(r, n - r, 2)
            rot = rng.uniform(0, 2 * np.pi)
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            outline_only = rng.random() < 0.2
            kw = {"outline": fill, "width": 2} if outline_only else {"fill": fill}
            if shape == "circle":
                e = rng.uniform(0.85, 1.15)
                dr.ellipse([cx - r * e, cy - r / e, cx + r * e, cy + r / e], **kw)
            elif shape == "square":
                dr.polygon(_regular_polygon(cx, cy, r, 4, rot), **kw)
            elif shape == "triangle":
                dr.polygon(_regular_polygon(cx, cy, r, 3, rot), **kw)
            elif shape == "cross":
                dr.polygon(_cross(cx, cy, r, rot), **kw)
            else:
                dr.polygon(_regular_polygon(cx, cy, r, 5, rot, inner=0.45), **kw)
            arr = np.asarray(im, float) + rng.normal(0, 8, (n, n, 3))
            images.append(_to_uint8(arr))
            labels.append(c)
    cc = _write_folder(root, images, np.array(labels), names)
    return DemoInfo(
        name=root.name, layout="image folder (PNG)", source="procedural (generated by metarec): one filled "
        "or outlined shape of random colour, size, position and rotation on a noisy two-colour gradient "
        "with 0-3 random distractor lines", licence="generated by metarec; no third-party rights (MIT, as "
        "metarec)", n_images=len(labels), class_counts=cc, size="64x64", colour="RGB",
    )


def _gen_gratings(root: Path, rng: np.random.Generator) -> DemoInfo:
    """Grey non-square (24x40) noisy Gabor gratings; class = orientation; compressed .npz, string labels."""
    angles = (0, 30, 60, 90, 120, 150)
    names = [f"{a:03d}deg" for a in angles]
    per_class, h, w = 150, 24, 40
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    xs, ys = [], []
    for c, a in enumerate(angles):
        for _ in range(per_class):
            th = np.deg2rad(a + rng.uniform(-8, 8))
            f = rng.uniform(0.08, 0.3)
            u = xx * np.cos(th) + yy * np.sin(th)
            g = np.sin(2 * np.pi * f * u + rng.uniform(0, 2 * np.pi))
            cx, cy, sig = rng.uniform(8, w - 8), rng.uniform(6, h - 6), rng.uniform(6, 18)
            env = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sig**2))
            img = 128 + rng.uniform(-30, 30) + rng.uniform(25, 90) * g * env
            img += rng.normal(0, rng.uniform(10, 30), img.shape)
            xs.append(_to_uint8(img))
            ys.append(names[c])
    x, y = np.stack(xs), np.array(ys)
    _save_npz(root, compressed=True, x=x, y=y)
    return DemoInfo(
        name=root.name, layout="npz (compressed; x uint8 (N,24,40), y unicode strings)",
        source="procedural (generated by metarec): sinusoidal gratings under a Gaussian window at random "
        "position, width, frequency and phase, orientation jittered +-8 degrees, plus pixel noise",
        licence="generated by metarec; no third-party rights (MIT, as metarec)", n_images=len(y),
        class_counts=dict.fromkeys(names, per_class), size="24x40 (height x width, non-square)",
        colour="grey",
    )


def _gen_hues(root: Path, rng: np.random.Generator) -> DemoInfo:
    """Tiny 16x16 colour swatches, 12 hue classes, shaded and noisy; train/test folders."""
    n_classes, per_class, n = 12, 100, 16
    names = [f"hue{k * 30:03d}" for k in range(n_classes)]
    total = n_classes * per_class
    labels = np.repeat(np.arange(n_classes), per_class)
    hue = (labels * 30 + rng.uniform(-9, 9, total)) / 360.0
    sat = rng.uniform(0.3, 1.0, total)
    val = rng.uniform(0.35, 1.0, total)
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1) - 0.5
    a = rng.uniform(0, 2 * np.pi, total)[:, None, None]
    shade = 1 + rng.uniform(0, 0.6, total)[:, None, None] * (np.cos(a) * xx + np.sin(a) * yy)
    v = np.clip(val[:, None, None] * shade + rng.normal(0, 0.04, (total, n, n)), 0, 1)
    h = hue[:, None, None] + rng.normal(0, 0.01, (total, n, n))
    s = np.clip(sat[:, None, None] + rng.normal(0, 0.05, (total, n, n)), 0, 1)
    rgb = _to_uint8(_hsv_to_rgb(h, s, v) * 255 + rng.normal(0, 6, (total, n, n, 3)))
    split = _split_labels(labels, 0.25, rng)
    cc = _write_folder(root, list(rgb), labels, names, split)
    return DemoInfo(
        name=root.name, layout="image folder with train/ and test/ (PNG)", source="procedural (generated by "
        "metarec): uniform colour swatches, hue = class x 30 degrees +-9, random saturation and value, a "
        "random brightness gradient and pixel noise", licence="generated by metarec; no third-party rights "
        "(MIT, as metarec)", n_images=total, class_counts=cc, size="16x16", colour="RGB",
        notes="25% of each class in test/",
    )


def _gen_spectra(root: Path, rng: np.random.Generator) -> DemoInfo:
    """Grey 48x48 power-law noise; class = spectral exponent beta (1/f**beta power spectrum)."""
    betas = (1.0, 1.6, 2.2, 2.8)
    names = [f"beta{b:.1f}" for b in betas]
    per_class, n = 190, 48
    labels = np.repeat(np.arange(len(betas)), per_class)
    beta = np.array(betas)[labels] + rng.uniform(-0.15, 0.15, len(labels))
    img = _power_law_noise(rng, len(labels), n, n, beta)
    img = img * rng.uniform(20, 50, (len(labels), 1, 1)) + rng.uniform(90, 165, (len(labels), 1, 1))
    img += rng.normal(0, 3, img.shape)
    cc = _write_folder(root, list(_to_uint8(img)), labels, names)
    return DemoInfo(
        name=root.name, layout="image folder (PNG)", source="procedural (generated by metarec): Gaussian "
        "noise filtered to a 1/f**beta power spectrum, beta = class value +-0.15, random mean and contrast",
        licence="generated by metarec; no third-party rights (MIT, as metarec)", n_images=len(labels),
        class_counts=cc, size="48x48", colour="grey",
    )


def _gen_defects(root: Path, rng: np.random.Generator) -> DemoInfo:
    """Grey 56x56 surface textures, binary ok/defect, strongly imbalanced (about 11.5:1)."""
    names = ("ok", "defect")
    counts, n = (920, 80), 56
    labels = np.repeat([0, 1], counts)
    total = len(labels)
    base = _power_law_noise(rng, total, n, n, rng.uniform(1.6, 2.2, total))
    yy = np.mgrid[0:n, 0:n][0].astype(float)
    freq, phase = rng.uniform(0.15, 0.4, (total, 1, 1)), rng.uniform(0, 2 * np.pi, (total, 1, 1))
    marks = np.sin(2 * np.pi * yy[None] * freq + phase)
    img = base * rng.uniform(8, 16, (total, 1, 1)) + marks * rng.uniform(0, 6, (total, 1, 1))
    img += rng.uniform(100, 160, (total, 1, 1)) + rng.normal(0, 5, img.shape)
    images = []
    for i in range(total):
        arr = img[i]
        if labels[i] == 1:
            mask = Image.new("L", (n, n), 0)
            dr = ImageDraw.Draw(mask)
            if rng.random() < 0.7:  # scratch
                length, a = rng.uniform(10, 35), rng.uniform(0, np.pi)
                cx, cy = rng.uniform(12, n - 12, 2)
                dx, dy = length / 2 * np.cos(a), length / 2 * np.sin(a)
                dr.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=255, width=int(rng.integers(1, 3)))
            else:  # pit
                r = rng.uniform(1.5, 3.5)
                cx, cy = rng.uniform(8, n - 8, 2)
                dr.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
            m = np.asarray(mask.filter(ImageFilter.GaussianBlur(0.7)), float) / 255.0
            arr = arr + m * rng.choice([-1.0, 1.0]) * rng.uniform(20, 45)
        images.append(_to_uint8(arr))
    cc = _write_folder(root, images, labels, names)
    return DemoInfo(
        name=root.name, layout="image folder (PNG)", source="procedural (generated by metarec): rough "
        "surface texture (power-law noise with faint machining marks); 'defect' images carry one faint "
        "scratch (70%) or pit (30%)", licence="generated by metarec; no third-party rights (MIT, as "
        "metarec)", n_images=total, class_counts=cc, size="56x56", colour="grey",
        notes="strongly imbalanced: 920 ok vs 80 defect",
    )


def _gen_blobs(root: Path, rng: np.random.Generator) -> DemoInfo:
    """Colour 40x40 'fluorescence' images; class = number of Gaussian blobs (1-5), blobs may overlap."""
    names = [f"{k}_blobs" if k > 1 else "1_blob" for k in range(1, 6)]
    per_class, n = 160, 40
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    images, labels = [], []
    for c in range(len(names)):
        for _ in range(per_class):
            img = rng.uniform(5, 30) + rng.normal(0, 7, (n, n, 3))
            for _ in range(c + 1):
                cx, cy, sig = rng.uniform(5, n - 5), rng.uniform(5, n - 5), rng.uniform(1.8, 3.8)
                colour = rng.dirichlet([0.6, 2.0, 0.8]) * rng.uniform(150, 330)
                g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sig**2))
                img = img + g[..., None] * colour
            images.append(_to_uint8(img))
            labels.append(c)
    cc = _write_folder(root, images, np.array(labels), names)
    return DemoInfo(
        name=root.name, layout="image folder (PNG)", source="procedural (generated by metarec): dark noisy "
        "background with 1-5 Gaussian spots of random size, position and (mostly green) colour; class = "
        "number of spots", licence="generated by metarec; no third-party rights (MIT, as metarec)",
        n_images=len(labels), class_counts=cc, size="40x40", colour="RGB",
    )


_GENERATORS: dict[str, tuple[Callable[[Path, np.random.Generator], DemoInfo], bool]] = {
    # name -> (generator, writes a .npz file instead of a folder)
    "digits": (_gen_digits, True),
    "animal_silhouettes": (_gen_animals, False),
    "textures": (_gen_textures, False),
    "photo_patches": (_gen_photo_patches, False),
    "shapes": (_gen_shapes, False),
    "gratings": (_gen_gratings, True),
    "hues": (_gen_hues, False),
    "noise_spectra": (_gen_spectra, False),
    "surface_defects": (_gen_defects, False),
    "blob_counts": (_gen_blobs, False),
}
DEMO_DATASETS: tuple[str, ...] = tuple(_GENERATORS)


def _target(out: Path, name: str) -> Path:
    """Where dataset ``name`` ends up in the collection folder ``out``."""
    return out / f"{name}.npz" if _GENERATORS[name][1] else out / name


def _occupied(path: Path) -> bool:
    """True when ``path`` is a file, or a folder with anything in it."""
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


def generate_demo_collection(out: Path, seed: int = 0, progress: bool = True, overwrite: bool = False,
                             only: Sequence[str] | None = None) -> list[str]:
    """Write the demo datasets (all, or those named in ``only``) into ``out``; return their names."""
    out = Path(out)
    names = list(DEMO_DATASETS) if only is None else list(only)
    unknown = [n for n in names if n not in _GENERATORS]
    if unknown:
        raise DatasetError(out, f"unknown demo dataset(s) {unknown}; known: {', '.join(DEMO_DATASETS)}")
    taken = [_target(out, n) for n in names if _occupied(_target(out, n))]
    if taken and not overwrite:
        raise OutputExistsError(taken[0], f"{len(taken)} demo dataset(s) already exist here "
                                          f"({', '.join(p.name for p in taken)}); pass overwrite=True")
    out.mkdir(parents=True, exist_ok=True)
    infos = []
    for name in tqdm(names, desc="demo datasets", unit="dataset", disable=not progress):
        gen, is_npz = _GENERATORS[name]
        # a folder, or for .npz datasets the file to write
        info = write_atomically(_target(out, name), gen, _rng(seed, name), is_dir=not is_npz)
        info.name = name
        infos.append(info)
    if only is None:
        _write_readme(out, infos, seed)
    return names


def write_atomically(final: Path, make: Callable[[Path, np.random.Generator], DemoInfo], rng: np.random.Generator,
                     is_dir: bool) -> DemoInfo:
    """Generate into a hidden ``.NAME.partial`` beside ``final``, then move it into place: an interrupted
    generation never leaves half a dataset where a collection reader would take it for a whole one."""
    partial = final.parent / f".{final.name}.partial"
    _remove(partial)
    if is_dir:
        partial.mkdir()
    try:
        info = make(partial, rng)
    except BaseException:
        _remove(partial)
        raise
    _remove(final)
    partial.replace(final)
    return info


def _remove(path: Path) -> None:
    """Delete a file or folder if present."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _write_readme(out: Path, infos: list[DemoInfo], seed: int) -> None:
    """Write .README.txt: what the collection is, then one paragraph per dataset."""
    head = (
        "metarec demo collection\n=======================\n\n"
        f"Generated offline by metafeatures.demo.generate_demo_collection(seed={seed}) from data "
        "bundled with installed packages (scikit-learn, animal-mnist, scikit-image) and from procedural "
        "drawings. Each subfolder or .npz file is one image classification dataset, named by folder name "
        "/ file stem. The datasets deliberately differ in content, colour, resolution, number of classes "
        f"and class balance. {sum(i.n_images for i in infos)} images in {len(infos)} datasets.\n\n"
    )
    body = "\n".join(i.paragraph() for i in infos)
    (out / README_NAME).write_text(head + body, encoding="utf-8")
