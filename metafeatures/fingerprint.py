"""Dataset fingerprints (seed 001 §6.1): a frozen backbone's penultimate-layer features of sampled images.

A :class:`FingerprintSpec` names everything that changes the numbers (backbone, weights and their hash,
resolution, normalisation); fingerprints are only comparable under the same spec, and every file
stores its spec. A video dataset's fingerprints are the same network's features of its clips' selected
frames (seed 000's centred frame window), averaged per clip; their spec adds the modality and frame
policy, and :meth:`FingerprintSpec.base` (the image form) is what image and video fingerprints share.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from metafeatures.backbones import get_backbone, load_backbone
from metafeatures.datasets import Dataset, iter_sample_batches
from metafeatures.errors import ArtifactError, SpecMismatchError
from metafeatures.images import resize_rgb
from metafeatures.paths import atomic_savez, cache_dir
from metafeatures.video import FRAME_POLICY, select_frames, window_for

SPEC_VERSION = 1
FINGERPRINT_FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class FingerprintSpec:
    """Everything that determines a fingerprint's values; two fingerprints compare only under equal specs."""

    backbone: str
    weights: str
    weights_sha256: str
    resolution: int
    feature_dim: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    layer: str = "penultimate:global-average-pool"
    resize: str = "bilinear-square"
    spec_version: int = SPEC_VERSION
    modality: str = "image"
    frame_policy: str | None = None

    def __post_init__(self) -> None:
        if self.resolution < 8:
            raise ValueError(f"resolution must be >= 8 pixels, got {self.resolution}")
        if self.modality not in ("image", "video"):
            raise ArtifactError(f"fingerprint spec modality must be image or video, got {self.modality!r}")
        if (self.modality == "video") != (self.frame_policy is not None):
            raise ArtifactError("a fingerprint spec has a frame policy exactly when its modality is video")
        if self.spec_version != SPEC_VERSION:
            raise ArtifactError(f"fingerprint spec version {self.spec_version} is not supported "
                                f"(this metarec reads {SPEC_VERSION})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists); an image spec has no modality fields, as before video support,
        so existing fingerprint files, matchers and portfolios keep their exact spec."""
        data = json.loads(json.dumps(asdict(self)))
        if self.modality == "image":
            del data["modality"], data["frame_policy"]
        return data

    def base(self) -> FingerprintSpec:
        """The image form of this spec: what image and video fingerprints of one network have in common."""
        return replace(self, modality="image", frame_policy=None)

    def for_video(self) -> FingerprintSpec:
        """This spec applied to clips: selected frames under seed 000's frame policy, averaged per clip."""
        return replace(self, modality="video", frame_policy=FRAME_POLICY)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FingerprintSpec:
        """Rebuild from :meth:`to_dict` output; unknown or missing fields are an ArtifactError."""
        try:
            return cls(**{**data, "mean": tuple(data["mean"]), "std": tuple(data["std"])})
        except (TypeError, KeyError) as exc:
            raise ArtifactError(f"malformed fingerprint spec {data!r}: {exc}") from exc

    def key(self) -> str:
        """Stable hash of the spec, used in cache keys."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def require_same(self, other: FingerprintSpec | dict[str, Any]) -> None:
        """Raise SpecMismatchError unless ``other`` is the same spec."""
        theirs = other.to_dict() if isinstance(other, FingerprintSpec) else other
        if theirs != self.to_dict():
            raise SpecMismatchError(self.to_dict(), theirs)


@dataclass
class Fingerprints:
    """Features of sampled images of one dataset, with the spec and provenance they were made under."""

    dataset: str
    content_hash: str
    spec: FingerprintSpec
    features: np.ndarray
    indices: np.ndarray
    labels: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write one ``.npz`` (no pickles): arrays plus a JSON ``__meta__`` entry."""
        meta = {"format_version": FINGERPRINT_FORMAT_VERSION, "dataset": self.dataset,
                "content_hash": self.content_hash, "spec": self.spec.to_dict(), "provenance": self.provenance}
        atomic_savez(path, features=self.features, indices=self.indices, labels=self.labels.astype(str),
                     __meta__=np.array(json.dumps(meta)))

    @classmethod
    def load(cls, path: Path, expected_spec: FingerprintSpec | None = None) -> Fingerprints:
        """Read a fingerprint file; refuse an unknown format version or (if given) a different spec."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["__meta__"]))
                arrays = {k: np.asarray(data[k]) for k in ("features", "indices", "labels")}
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{path}: not a metarec fingerprint file ({exc})") from exc
        if meta.get("format_version") != FINGERPRINT_FORMAT_VERSION:
            raise ArtifactError(f"{path}: fingerprint format version {meta.get('format_version')!r} is not "
                                f"supported (this metarec reads {FINGERPRINT_FORMAT_VERSION})")
        spec = FingerprintSpec.from_dict(meta["spec"])
        if expected_spec is not None:
            expected_spec.require_same(spec)
        return cls(dataset=meta["dataset"], content_hash=meta["content_hash"], spec=spec,
                   provenance=meta.get("provenance", {}), **arrays)


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when present, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Fingerprinter:
    """Loads a frozen backbone once and turns batches of RGB uint8 images into feature vectors."""

    def __init__(self, backbone: str = "resnet18", weights: str = "imagenet", resolution: int = 64,
                 batch_size: int = 64, device: str | None = None, threads: int | None = None,
                 seed: int = 0) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.device = pick_device(device)
        self.batch_size = batch_size
        model, identity, digest = load_backbone(backbone, weights, seed=seed)
        self._memory_format = torch.channels_last if get_backbone(backbone).channels_last else torch.contiguous_format
        self.model = model.to(self.device).to(memory_format=self._memory_format)
        self.spec = FingerprintSpec(backbone=backbone, weights=identity, weights_sha256=digest,
                                    resolution=resolution, feature_dim=get_backbone(backbone).feature_dim)
        self._mean = torch.tensor(self.spec.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(self.spec.std, device=self.device).view(1, 3, 1, 1) * 255.0

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> np.ndarray:
        """Features of a uint8 (N, 3, R, R) batch: normalise on the device, run the frozen network."""
        x = batch.to(self.device, non_blocking=True).float()
        x = ((x - self._mean) / self._std).contiguous(memory_format=self._memory_format)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.device.type == "cuda"):
            out = self.model(x)
        return out.float().cpu().numpy()

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        """Feature matrix (N, feature_dim) float32 for a list of (H, W, 3) uint8 images of any size."""
        size = (self.spec.resolution, self.spec.resolution)
        if not images:
            return np.zeros((0, self.spec.feature_dim), dtype=np.float32)
        return self.features_of_pixels(np.stack([resize_rgb(img, size) for img in images]))

    def features_of_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Features of an already resized (N, R, R, 3) uint8 array, batch by batch."""
        chunks = [self.forward(torch.from_numpy(pixels[i: i + self.batch_size]).permute(0, 3, 1, 2))
                  for i in range(0, len(pixels), self.batch_size)]
        return np.concatenate(chunks).astype(np.float32)

    def _decoded_sample(self, ds: Dataset, content_hash: str, n_samples: int, seed: int, use_cache: bool,
                        progress: bool) -> tuple[np.ndarray, np.ndarray]:
        """The sampled images resized to the spec's resolution as uint8, decoded once and cached."""
        size = (self.spec.resolution, self.spec.resolution)
        path = cache_dir() / "decoded" / f"{content_hash[:20]}-{size[0]}x{size[1]}-n{n_samples}-s{seed}.npz"
        if use_cache and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    return data["indices"], data["pixels"]
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)
        chosen: list[int] = []
        pixels: list[np.ndarray] = []
        with tqdm(total=n_samples, desc=f"decode {ds.name}", unit="img", disable=not progress) as bar:
            for idx, imgs in iter_sample_batches(ds, n_samples, seed=seed, batch_size=self.batch_size):
                chosen.extend(idx)
                pixels.extend(resize_rgb(img, size) for img in imgs)
                bar.update(len(idx))
        indices, stacked = np.asarray(chosen, dtype=np.int64), np.stack(pixels)
        if use_cache:
            atomic_savez(path, indices=indices, pixels=stacked)
        return indices, stacked

    def _decoded_clips(self, ds: Dataset, content_hash: str, n_samples: int, seed: int, use_cache: bool,
                       progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sampled clips' selected frames (centred window) at the spec's resolution: indices, pixels of all
        frames (F, R, R, 3) and each clip's frame offsets (N + 1), decoded once and cached."""
        size = (self.spec.resolution, self.spec.resolution)
        path = cache_dir() / "decoded" / f"{content_hash[:20]}-clips-{size[0]}x{size[1]}-n{n_samples}-s{seed}.npz"
        if use_cache and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    return data["indices"], data["pixels"], data["offsets"]
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)
        chosen: list[int] = []
        pixels: list[np.ndarray] = []
        offsets = [0]
        with tqdm(total=n_samples, desc=f"decode {ds.name}", unit="clip", disable=not progress) as bar:
            for idx, clips in iter_sample_batches(ds, n_samples, seed=seed, batch_size=8):
                for i, frames in zip(idx, clips, strict=True):
                    picked = select_frames(len(frames), window_for(len(frames)))
                    pixels.extend(resize_rgb(frames[k], size) for k in picked)
                    offsets.append(offsets[-1] + len(picked))
                    chosen.append(i)
                bar.update(len(idx))
        out = np.asarray(chosen, dtype=np.int64), np.stack(pixels), np.asarray(offsets, dtype=np.int64)
        if use_cache:
            atomic_savez(path, indices=out[0], pixels=out[1], offsets=out[2])
        return out

    def fingerprint(self, ds: Dataset, content_hash: str, n_samples: int = 512, seed: int = 0,
                    use_cache: bool = True, progress: bool = False,
                    embed: Callable[[np.ndarray], np.ndarray] | None = None) -> Fingerprints:
        """Fingerprints of ``n_samples`` seeded images (or clips) of ``ds``, cached by content hash and spec.

        A clip's fingerprint is the mean of its selected frames' features (seed 001 eq. 2 on features), so
        it lives in the same space as image fingerprints of this network. ``embed`` replaces
        :meth:`features_of_pixels` (the service passes its request batcher).
        """
        embed = embed or self.features_of_pixels
        spec = self.spec.for_video() if ds.modality == "video" else self.spec
        path = cache_path(content_hash, spec, n_samples, seed)
        if use_cache and path.is_file():
            try:
                return Fingerprints.load(path, expected_spec=spec)
            except ArtifactError:
                path.unlink(missing_ok=True)
        if ds.modality == "video":
            indices, pixels, offsets = self._decoded_clips(ds, content_hash, n_samples, seed, use_cache, progress)
            frame_feats = embed(pixels)
            counts = np.diff(offsets)[:, None].astype(np.float32)
            feats = (np.add.reduceat(frame_feats, offsets[:-1], axis=0) / counts).astype(np.float32)
        else:
            indices, pixels = self._decoded_sample(ds, content_hash, n_samples, seed, use_cache, progress)
            feats = embed(pixels)
        labels = np.array([ds.items[i].label for i in indices], dtype=str)
        fp = Fingerprints(dataset=ds.name, content_hash=content_hash, spec=spec, features=feats,
                          indices=indices, labels=labels, provenance=_provenance(n_samples, seed, self.device))
        if use_cache:
            fp.save(path)
        return fp


def cache_path(content_hash: str, spec: FingerprintSpec, n_samples: int, seed: int) -> Path:
    """Cache file for a dataset's fingerprints under a spec: derived data, safe to delete."""
    return cache_dir() / "fingerprints" / f"{content_hash[:20]}-{spec.key()[:16]}-n{n_samples}-s{seed}.npz"


def _provenance(n_samples: int, seed: int, device: torch.device) -> dict[str, Any]:
    """Who made these fingerprints, when, and how."""
    import torchvision

    from metarec import __version__ as mf_version

    return {"metarec_version": mf_version, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "n_samples": n_samples, "seed": seed, "device": str(device)}
