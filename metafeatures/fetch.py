"""Download public image classification datasets with torchvision and convert them to image folders.

``fetch_dataset("cifar10", Path("collection/cifar10"))`` first checks, with one short TCP connect, that
the download host answers (so an offline machine fails in seconds with a clear message), then lets
torchvision download the files and writes ``out/<split>/<class>/<index:06d>.png`` plus ``out/SOURCE.txt``.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image
from tqdm import tqdm

from metafeatures.errors import DatasetFetchError, OutputExistsError

SOURCE_NAME = "SOURCE.txt"
_URL_RE = re.compile(r"""https?://[^\s"'{}]+""")
# class attributes where torchvision datasets keep their download URLs, in the order they are tried
_URL_ATTRIBUTES = ("mirrors", "url", "_URL", "_RESOURCES", "resources", "split_list", "_download_url_prefix",
                   "base_url", "_BASE_URL", "_url")
_HINT = "copy an image-folder dataset by hand instead, see README"

# read-only (Mapping) so literal dicts of any value type fit; see FetchSpec.splits
_Splits = Mapping[str, tuple[Mapping[str, Any], ...]]


@dataclass(frozen=True)
class FetchSpec:
    """How to build one torchvision dataset's train/test parts and name its classes."""

    tv_class: str  # attribute name in torchvision.datasets
    # our split name -> keyword arguments of each torchvision part that goes into it (parts are joined)
    splits: _Splits
    homepage: str
    classes: tuple[str, ...] | None = None  # fixed class names; None: read ``.classes`` off the dataset
    probe_url: str | None = None  # used only if the torchvision class exposes no download URL at all
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # keyword arguments passed to every part


_TRAIN_TEST: _Splits = {"train": ({"train": True},), "test": ({"train": False},)}
_SPLIT_TRAIN_TEST: _Splits = {"train": ({"split": "train"},), "test": ({"split": "test"},)}
_DIGITS = tuple(str(i) for i in range(10))

FETCHABLE: dict[str, FetchSpec] = {
    "mnist": FetchSpec("MNIST", _TRAIN_TEST, "http://yann.lecun.com/exdb/mnist/", classes=_DIGITS),
    "fashionmnist": FetchSpec("FashionMNIST", _TRAIN_TEST, "https://github.com/zalandoresearch/fashion-mnist"),
    "kmnist": FetchSpec("KMNIST", _TRAIN_TEST, "https://github.com/rois-codh/kmnist"),
    "cifar10": FetchSpec("CIFAR10", _TRAIN_TEST, "https://www.cs.toronto.edu/~kriz/cifar.html"),
    "cifar100": FetchSpec("CIFAR100", _TRAIN_TEST, "https://www.cs.toronto.edu/~kriz/cifar.html",
                          notes="fine labels (100 classes)"),
    "svhn": FetchSpec("SVHN", _SPLIT_TRAIN_TEST, "http://ufldl.stanford.edu/housenumbers/", classes=_DIGITS,
                      notes="cropped digits (32x32); the 'extra' split is not fetched"),
    "eurosat": FetchSpec("EuroSAT", {"train": ({},)}, "https://github.com/phelber/EuroSAT",
                         probe_url="https://huggingface.co/datasets/torchgeo/eurosat",
                         notes="RGB version; no official split, everything is in train/"),
    "flowers102": FetchSpec("Flowers102", {"train": ({"split": "train"}, {"split": "val"}),
                                           "test": ({"split": "test"},)},
                            "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/", notes="train = train + val"),
    "oxfordiiitpet": FetchSpec("OxfordIIITPet", {"train": ({"split": "trainval"},), "test": ({"split": "test"},)},
                               "https://www.robots.ox.ac.uk/~vgg/data/pets/", notes="37 breeds; train = trainval"),
    "dtd": FetchSpec("DTD", {"train": ({"split": "train"}, {"split": "val"}), "test": ({"split": "test"},)},
                     "https://www.robots.ox.ac.uk/~vgg/data/dtd/", notes="partition 1; train = train + val",
                     extra={"partition": 1}),
    "stl10": FetchSpec("STL10", _SPLIT_TRAIN_TEST, "https://cs.stanford.edu/~acoates/stl10/",
                       notes="labelled images only (96x96)"),
    "gtsrb": FetchSpec("GTSRB", _SPLIT_TRAIN_TEST, "https://benchmark.ini.rub.de/gtsrb_news.html",
                       classes=tuple(f"{i:02d}" for i in range(43)), notes="43 traffic-sign classes, by id"),
}


def _spec(name: str) -> tuple[str, FetchSpec]:
    """Normalised key and spec for ``name``, or DatasetFetchError listing the known names."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    if key not in FETCHABLE:
        raise DatasetFetchError(f"unknown dataset {name!r}; fetchable: {', '.join(FETCHABLE)}")
    return key, FETCHABLE[key]


def _tv_class(spec: FetchSpec) -> type:
    """The torchvision dataset class named by ``spec``."""
    import torchvision.datasets

    try:
        return getattr(torchvision.datasets, spec.tv_class)
    except AttributeError:
        raise DatasetFetchError(
            f"this torchvision ({_tv_version()}) has no datasets.{spec.tv_class}; upgrade torchvision"
        ) from None


def _tv_version() -> str:
    """Installed torchvision version string."""
    import torchvision

    return str(torchvision.__version__)


def _urls_in(value: object) -> Iterator[str]:
    """Every http(s) URL in a (nested) str/list/tuple/dict class attribute, in order."""
    if isinstance(value, str):
        if value.startswith(("http://", "https://")):
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _urls_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _urls_in(v)


def probe_urls(name: str) -> list[str]:
    """Download URLs of dataset ``name`` as torchvision declares them (no network): best first."""
    _, spec = _spec(name)
    cls = _tv_class(spec)
    urls: list[str] = []
    for attr in _URL_ATTRIBUTES:
        urls.extend(_urls_in(inspect.getattr_static(cls, attr, None)))
    if not urls:  # some classes (EuroSAT, GTSRB) only spell the URL inside their download method
        for meth in ("download", "_download"):
            fn = getattr(cls, meth, None)
            if fn is None:
                continue
            try:
                urls.extend(_URL_RE.findall(inspect.getsource(fn)))
            except (OSError, TypeError):
                pass
    if spec.probe_url:
        urls.append(spec.probe_url)
    seen: dict[str, None] = {}
    for u in urls:
        seen.setdefault(u, None)
    if not seen:
        raise DatasetFetchError(f"cannot find a download URL for {name} in torchvision {_tv_version()}")
    return list(seen)


def _host_port(url: str) -> tuple[str, int]:
    """(host, port) a URL connects to."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise DatasetFetchError(f"malformed download URL {url!r}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def probe_host(name: str) -> str:
    """Host of the first download URL of dataset ``name`` (resolved offline from torchvision's class)."""
    return _host_port(probe_urls(name)[0])[0]


def _connect_once(host: str, port: int, timeout_s: float) -> str | None:
    """Try one TCP connect within ``timeout_s`` (DNS included); None on success, else the reason."""
    result: list[str | None] = []

    def attempt() -> None:
        try:
            sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            result.append(f"{type(exc).__name__}: {exc}")
        else:
            sock.close()
            result.append(None)

    # a thread, because name resolution inside create_connection ignores the socket timeout
    t = threading.Thread(target=attempt, name=f"probe-{host}", daemon=True)
    t.start()
    t.join(timeout_s)
    if not result:
        return f"no answer within {timeout_s:.1f} s"
    return result[0]


def check_reachable(name: str, timeout_s: float = 10) -> str:
    """Return the download host of ``name`` that answers a TCP connect, else raise DatasetFetchError."""
    key, _ = _spec(name)
    hosts = list(dict.fromkeys(_host_port(u) for u in probe_urls(key)))
    deadline = time.monotonic() + timeout_s
    problems = []
    for host, port in hosts:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        problem = _connect_once(host, port, remaining)
        if problem is None:
            return host
        problems.append(f"{host}:{port} {problem}")
    raise DatasetFetchError(
        f"cannot reach {hosts[0][0]} to download {key}: {'; '.join(problems) or 'timed out'}; {_HINT}"
    )


# ------------------------------------------------------------------------------------------ conversion


def _safe_dirname(name: str) -> str:
    """A class name made safe as one folder name (no separators, no leading dot)."""
    s = re.sub(r"[^\w .+-]", "_", name).strip().lstrip(".")
    return s or "_"


def _class_dirs(class_names: Iterable[str]) -> list[str]:
    """Unique, filesystem-safe folder names for the class names, in order."""
    dirs: list[str] = []
    used: set[str] = set()
    for i, n in enumerate(class_names):
        d = _safe_dirname(str(n))
        if d.lower() in used:
            d = f"{d}_{i}"
        used.add(d.lower())
        dirs.append(d)
    return dirs


def _array_to_uint8(a: np.ndarray) -> np.ndarray:
    """Pixel values of any numeric dtype as uint8 (floats in 0..1 are scaled to 0..255)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    f = a.astype(np.float64)
    if np.issubdtype(a.dtype, np.floating):
        if f.size and np.nanmax(f) <= 1.0 and np.nanmin(f) >= -1e-6:
            f = f * 255.0
        f = np.nan_to_num(f)
    elif f.size and f.max() > 255:
        f = f * (255.0 / f.max())
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def to_pil_image(img: object, channels_first: bool | None = None) -> Image.Image:
    """A dataset sample (PIL image, torch tensor C,H,W or numpy H,W[,C]) as an 'L' or 'RGB' PIL image."""
    if isinstance(img, Image.Image):
        if img.mode in ("L", "RGB"):
            return img
        if img.mode in ("1", "LA", "La"):
            return img.convert("L")
        if img.mode.startswith(("I", "F")):
            return Image.fromarray(_array_to_uint8(np.asarray(img)))
        return img.convert("RGB")
    if hasattr(img, "detach") and hasattr(img, "numpy"):  # a torch tensor: channels first by convention
        arr = img.detach().cpu().numpy()
        channels_first = True if channels_first is None else channels_first
    else:
        arr = np.asarray(img)
    if arr.ndim == 3:
        if channels_first is None:  # numpy: H,W,C like PIL unless it clearly is C,H,W
            channels_first = arr.shape[0] in (1, 2, 3, 4) and arr.shape[-1] not in (1, 2, 3, 4)
        if channels_first:
            arr = np.moveaxis(arr, 0, -1)
        if arr.shape[-1] in (1, 2):
            arr = arr[..., 0]
        elif arr.shape[-1] == 4:
            arr = arr[..., :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise DatasetFetchError(f"cannot turn an image of shape {arr.shape} into a picture")
    return Image.fromarray(np.ascontiguousarray(_array_to_uint8(arr)))


def _label_index(label: object) -> int:
    """An integer class index from an int, numpy integer or one-element tensor/array."""
    try:
        value = np.asarray(label).reshape(-1)
        if value.size != 1 or not np.issubdtype(value.dtype, np.integer):
            raise ValueError
        return int(value[0])
    except (ValueError, TypeError):
        raise DatasetFetchError(f"expected an integer class label, got {label!r}") from None


def _samples(ds: object) -> tuple[Iterator[Any], int | None]:
    """Iterate (image, label) pairs of a map-style (len + getitem) or iterable dataset; and its length."""
    if hasattr(ds, "__len__") and hasattr(ds, "__getitem__"):
        n = len(ds)  # type: ignore[arg-type]
        return (ds[i] for i in range(n)), n  # type: ignore[index]
    return iter(ds), None  # type: ignore[call-overload]


def convert_to_image_folder(ds: object, out_dir: Path, split: str, class_names: list[str],
                            progress: bool = True, start_index: int = 0) -> int:
    """Write every (image, int label) of ``ds`` to ``out_dir/split/<class>/<index:06d>.png``; return count."""
    dirs = _class_dirs(class_names)
    base = Path(out_dir) / split
    made: set[int] = set()
    items, total = _samples(ds)
    written = 0
    with tqdm(total=total, desc=f"writing {split}", unit="img", disable=not progress) as bar:
        for item in items:
            try:
                img, label = item[0], item[1]
            except (TypeError, IndexError, KeyError):
                raise DatasetFetchError(f"expected (image, label) pairs, got {type(item).__name__}") from None
            k = _label_index(label)
            if not 0 <= k < len(dirs):
                raise DatasetFetchError(f"label {k} is outside the {len(dirs)} class names given")
            d = base / dirs[k]
            if k not in made:
                d.mkdir(parents=True, exist_ok=True)
                made.add(k)
            to_pil_image(img).save(d / f"{start_index + written:06d}.png", format="PNG")
            written += 1
            bar.update(1)
    return written


# ---------------------------------------------------------------------------------------------- fetch


def _class_names(spec: FetchSpec, parts: list[object]) -> list[str]:
    """Class names from the spec, else the first part's ``classes`` attribute (CIFAR, DTD, pets, ...)."""
    if spec.classes is not None:
        return list(spec.classes)
    for p in parts:
        names = getattr(p, "classes", None)
        if names:
            return [str(n) for n in names]
    raise DatasetFetchError(f"torchvision.datasets.{spec.tv_class} does not say its class names")


def _occupied(path: Path) -> bool:
    """True when ``path`` is a file or a non-empty folder."""
    return any(path.iterdir()) if path.is_dir() else path.exists()


def fetch_dataset(name: str, out: Path, download_root: Path | None = None, timeout_s: float = 10,
                  progress: bool = True, overwrite: bool = False) -> Path:
    """Download dataset ``name`` with torchvision and write it as an image folder at ``out``; return ``out``."""
    key, spec = _spec(name)
    out = Path(out)
    if _occupied(out) and not overwrite:
        raise OutputExistsError(out, "already exists and is not empty; pass overwrite=True to replace it")
    host = check_reachable(key, timeout_s)
    cls = _tv_class(spec)
    tmp = tempfile.TemporaryDirectory(prefix=f"metarec-{key}-") if download_root is None else None
    root = Path(tmp.name) if tmp is not None else Path(str(download_root))
    partial = out.parent / f".{out.name}.partial"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        counts: dict[str, int] = {}
        class_names: list[str] | None = None
        for split, part_kwargs in spec.splits.items():
            parts = [_build(cls, key, root, {**spec.extra, **kw}) for kw in part_kwargs]
            if class_names is None:
                class_names = _class_names(spec, parts)
            n = 0
            for p in parts:
                n += convert_to_image_folder(p, partial, split, class_names, progress=progress, start_index=n)
            counts[split] = n
        _write_source(partial, key, spec, host, counts, class_names or [])
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        out.parent.mkdir(parents=True, exist_ok=True)
        partial.replace(out)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
        if tmp is not None:
            tmp.cleanup()
    return out


def _build(cls: type, key: str, root: Path, kwargs: dict[str, Any]) -> object:
    """Instantiate (and download) one torchvision part, turning any failure into DatasetFetchError."""
    try:
        return cls(root=str(root), download=True, **kwargs)
    except Exception as exc:  # torchvision raises URLError, HTTPError, RuntimeError (checksum), tarfile errors
        raise DatasetFetchError(f"downloading {key} ({cls.__name__}{kwargs or ''}) failed: {exc}; {_HINT}") from exc


def _write_source(out: Path, key: str, spec: FetchSpec, host: str, counts: dict[str, int],
                  class_names: list[str]) -> None:
    """Write SOURCE.txt: which dataset, from where, with which torchvision, when."""
    today = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"dataset: {key} (torchvision.datasets.{spec.tv_class})",
        f"torchvision: {_tv_version()}",
        f"date: {today}",
        f"downloaded from: {host}",
        f"homepage (licence and terms of use): {spec.homepage}",
        "images: " + ", ".join(f"{s} {n}" for s, n in counts.items()),
        f"classes: {len(class_names)}",
    ]
    if spec.notes:
        lines.append(f"notes: {spec.notes}")
    (out / SOURCE_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
