"""Classification head of seed 000: optional 1×1 convolution, global average pooling, 1–3 dropout+linear layers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from metafeatures.errors import ConfigError


class HeadSpecError(ConfigError, ValueError):
    """An invalid HeadSpec field: a ConfigError (metarec's own error) that is also a ValueError."""


@dataclass(frozen=True)
class HeadSpec:
    """Shape of the head: ``conv1x1`` adds a 1×1 convolution C→width with ReLU before pooling; ``layers``
    counts the fully connected layers including the output one; ``width`` is the hidden width;
    ``dropout`` is applied before each linear layer."""

    conv1x1: bool = False
    layers: int = 2
    width: int = 512
    dropout: float = 0.2

    def __post_init__(self) -> None:
        """Refuse values that would build a broken head, naming the field."""
        if not isinstance(self.conv1x1, bool):
            raise HeadSpecError("conv1x1", self.conv1x1, "must be a bool")
        if isinstance(self.layers, bool) or not isinstance(self.layers, int) or not 1 <= self.layers <= 3:
            raise HeadSpecError("layers", self.layers, "must be an integer from 1 to 3")
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
            raise HeadSpecError("width", self.width, "must be a positive integer")
        if (isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float))
                or not 0.0 <= float(self.dropout) < 1.0):
            raise HeadSpecError("dropout", self.dropout, "must be a number in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready), the form checkpoints store."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadSpec:
        """Rebuild from ``to_dict`` output; unknown keys are an error."""
        unknown = sorted(set(data) - {"conv1x1", "layers", "width", "dropout"})
        if unknown:
            raise HeadSpecError(unknown[0], data[unknown[0]], "unknown HeadSpec field")
        return cls(**data)


class Head(nn.Module):
    """Maps a feature map (N, C, h, w) to logits (N, n_classes) as described by a HeadSpec."""

    def __init__(self, in_channels: int, n_classes: int, spec: HeadSpec = HeadSpec()) -> None:
        super().__init__()
        if in_channels < 1 or n_classes < 1:
            raise ConfigError("n_classes" if n_classes < 1 else "in_channels",
                              n_classes if n_classes < 1 else in_channels, "must be at least 1")
        self.spec = spec
        self.in_channels = in_channels
        self.n_classes = n_classes
        c = in_channels
        if spec.conv1x1:
            self.conv: nn.Module = nn.Sequential(nn.Conv2d(c, spec.width, kernel_size=1), nn.ReLU(inplace=True))
            c = spec.width
        else:
            self.conv = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        layers: list[nn.Module] = []
        for _ in range(spec.layers - 1):
            layers += [nn.Dropout(spec.dropout), nn.Linear(c, spec.width), nn.ReLU(inplace=True)]
            c = spec.width
        layers += [nn.Dropout(spec.dropout), nn.Linear(c, n_classes)]
        self.fc = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from a 4-D feature map."""
        return self.fc(torch.flatten(self.pool(self.conv(features)), 1))


VIDEO_HEAD_KINDS = ("temporal_conv", "average")


@dataclass(frozen=True)
class VideoSpec:
    """How a video model fuses frames: ``head`` is ``temporal_conv`` (a 1-D convolution of width ``kernel``
    over the ``frames`` per-frame feature vectors, seed 000) or ``average`` (per-frame logits averaged,
    seed 001 eq. 2)."""

    head: str = "temporal_conv"
    frames: int = 4
    kernel: int = 3

    def __post_init__(self) -> None:
        """Refuse a head kind that does not exist or a kernel longer than the frame window."""
        if self.head not in VIDEO_HEAD_KINDS:
            raise HeadSpecError("video_head", self.head, f"must be one of {', '.join(VIDEO_HEAD_KINDS)}")
        for name in ("frames", "kernel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise HeadSpecError(name, value, "must be a positive integer")
        if self.kernel > self.frames:
            raise HeadSpecError("kernel", self.kernel, f"longer than the {self.frames}-frame window")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready), the form checkpoints store."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoSpec:
        """Rebuild from ``to_dict`` output; unknown keys are an error."""
        unknown = sorted(set(data) - {"head", "frames", "kernel"})
        if unknown:
            raise HeadSpecError(unknown[0], data[unknown[0]], "unknown VideoSpec field")
        return cls(**data)


class TemporalFusion(nn.Module):
    """Seed 000's temporal block: a depthwise 1-D convolution (no padding) + ReLU over per-frame feature
    vectors (N, C, T), then the mean over the remaining time steps → (N, C). Depthwise keeps it at C·k
    weights (MobileNetV2's 1280 channels would need 11 M weights for a full kernel-7 convolution)."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size=kernel, groups=channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T) with T ≥ kernel → (N, C)."""
        return self.act(self.conv(x)).mean(dim=2)
