"""The network that is fine-tuned: a zoo backbone plus a seed-000 head, its weights source and its freezing strategy."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from finetune.heads import Head, HeadSpec, TemporalFusion, VideoSpec
from finetune.zoo import ZooEntry, get_entry
from metafeatures.backbones import check_hash_prefix, find_weights_file
from metafeatures.errors import ArtifactError, ConfigError, WeightsNotFoundError
from metafeatures.paths import file_sha256

STRATEGIES: tuple[str, ...] = ("full", "frozen", "last_k")
PRETRAINED_NONE = "none"
PRETRAINED_IMAGENET = "imagenet"


class FinetuneModel(nn.Module):
    """``backbone`` (zoo feature extractor) followed by ``head``; maps normalised images (N, 3, H, W) to logits.

    Modules that the strategy freezes stay in eval mode even after ``train()`` (BatchNorm statistics,
    dropout and stochastic depth of frozen parts do not change during training).
    """

    def __init__(self, zoo_name: str, backbone: nn.Module, head: Head, input_size: tuple[int, int],
                 pretrained: str = PRETRAINED_NONE, pretrained_sha256: str = "") -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.zoo_name = zoo_name
        self.n_classes = head.n_classes
        self.head_spec = head.spec
        self.input_size = input_size
        self.pretrained = pretrained
        self.pretrained_sha256 = pretrained_sha256
        self.strategy = "full"
        self.last_k: int | None = None
        self._frozen_modules: list[nn.Module] = []

    @property
    def entry(self) -> ZooEntry:
        """The zoo entry this model's backbone was built from."""
        return get_entry(self.zoo_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) of a float batch (N, 3, H, W), ImageNet-normalised."""
        return self.head(self.backbone(x))

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """The backbone's blocks in forward order (what ``last_k`` counts from the end)."""
        return self.entry.blocks(self.backbone)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser should update (those with requires_grad)."""
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> FinetuneModel:
        """Like nn.Module.train, but the frozen part of the backbone always stays in eval mode."""
        super().train(mode)
        if mode:
            for module in self._frozen_modules:
                module.train(False)
        return self


class VideoFinetuneModel(FinetuneModel):
    """The same backbone and head applied to every frame of a clip (N, T, 3, H, W), fused per ``video``:
    a temporal convolution between pooling and the fully connected layers, or the mean of per-frame logits."""

    def __init__(self, zoo_name: str, backbone: nn.Module, head: Head, input_size: tuple[int, int],
                 video: VideoSpec, pretrained: str = PRETRAINED_NONE, pretrained_sha256: str = "") -> None:
        super().__init__(zoo_name, backbone, head, input_size, pretrained, pretrained_sha256)
        self.video = video
        channels = head.spec.width if head.spec.conv1x1 else head.in_channels
        self.temporal = TemporalFusion(channels, video.kernel) if video.head == "temporal_conv" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, n_classes) of a float clip batch (N, T, 3, H, W), ImageNet-normalised."""
        if x.ndim != 5:
            raise ConfigError("input", tuple(x.shape), "a video model takes clips (N, T, 3, H, W)")
        n, t = x.shape[:2]
        maps = self.backbone(x.flatten(0, 1))
        if self.temporal is None:  # seed 001 eq. 2: c = mean_i f(v_i)
            return self.head(maps).view(n, t, -1).mean(dim=1)
        pooled = torch.flatten(self.head.pool(self.head.conv(maps)), 1).view(n, t, -1)
        return self.head.fc(self.temporal(pooled.transpose(1, 2)))


def apply_strategy(model: FinetuneModel, strategy: str, last_k: int = 1) -> FinetuneModel:
    """Set which parameters train: ``full`` all; ``frozen`` only the head (backbone in eval mode);
    ``last_k`` the last ``last_k`` backbone blocks plus the head (the rest frozen and in eval mode)."""
    entry = model.entry
    _check_strategy(strategy, last_k, entry)
    for p in model.parameters():
        p.requires_grad_(True)
    if strategy == "full":
        frozen: list[nn.Module] = []
    else:
        trainable_blocks = [m for _, m in model.blocks()[entry.n_blocks - last_k:]] if strategy == "last_k" else []
        inside = {id(m) for block in trainable_blocks for m in block.modules()}
        # a backbone module is frozen when neither it nor any of its descendants belongs to a trainable block
        frozen = [m for m in model.backbone.modules() if not any(id(s) in inside for s in m.modules())]
        for module in frozen:
            for p in module.parameters(recurse=False):
                p.requires_grad_(False)
    model.strategy = strategy
    model.last_k = last_k if strategy == "last_k" else None
    model._frozen_modules = frozen
    model.train(model.training)
    return model


def _check_strategy(strategy: str, last_k: int, entry: ZooEntry) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError("strategy", strategy, f"must be one of {', '.join(STRATEGIES)}")
    if strategy == "last_k" and (isinstance(last_k, bool) or not isinstance(last_k, int)
                                 or not 1 <= last_k <= entry.n_blocks):
        raise ConfigError("last_k", last_k, f"backbone {entry.name} has {entry.n_blocks} blocks: "
                                            f"last_k must be between 1 and {entry.n_blocks}")


def _check_input_size(input_size: object) -> tuple[int, int]:
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    if (not isinstance(input_size, (tuple, list)) or len(input_size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in input_size)):
        raise ConfigError("input_size", input_size, "must be (height, width), two positive integers")
    return int(input_size[0]), int(input_size[1])


def _too_small(entry: ZooEntry, size: tuple[int, int]) -> ConfigError:
    m = entry.min_input_size
    return ConfigError("input_size", size,
                       f"backbone {entry.name} does not fit input {size[0]}x{size[1]}: needs at least {m}x{m}")


def _load_imagenet_state(entry: ZooEntry) -> tuple[dict[str, torch.Tensor], Path, str]:
    if entry.weights is None:
        raise ConfigError("pretrained", PRETRAINED_IMAGENET,
                          f"backbone {entry.name} has no ImageNet weights (torchvision publishes none); "
                          "use pretrained='none' or a metarec checkpoint of the same backbone")
    path = find_weights_file(entry.weights, entry.name)
    digest = file_sha256(path)
    check_hash_prefix(path, digest)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise ArtifactError(f"{path}: not a readable torch state dict ({type(exc).__name__})") from exc
    if not isinstance(state, dict):
        raise ArtifactError(f"{path}: expected a state dict, got {type(state).__name__}")
    convert = getattr(entry.weights, "convert_state", None)  # packaged (non-torchvision) files: key layout
    return (convert(state) if convert is not None else state), path, digest


def _load_checkpoint_backbone(entry: ZooEntry, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    from finetune.checkpoint import load_checkpoint  # checkpoint imports this module

    if not path.is_file():
        raise WeightsNotFoundError(
            f"pretrained={str(path)!r}: no such file; pretrained must be 'none', 'imagenet' or a metarec checkpoint")
    ckpt = load_checkpoint(path)
    if ckpt.zoo_name != entry.name:
        raise ArtifactError(f"{path}: checkpoint holds backbone {ckpt.zoo_name}, cannot initialise {entry.name}")
    prefix = "backbone."
    state = {k[len(prefix):]: v for k, v in ckpt.state_dict.items() if k.startswith(prefix)}
    return state, file_sha256(path)


def build_model(name: str, n_classes: int, pretrained: str | Path = PRETRAINED_NONE, head: HeadSpec = HeadSpec(),
                strategy: str = "full", last_k: int = 1, input_size: tuple[int, int] = (64, 64),
                seed: int = 0, video: VideoSpec | None = None) -> FinetuneModel:
    """Build a zoo backbone + head, seeded, with weights from nowhere (``none``), torchvision's ImageNet
    file (``imagenet``, never downloaded) or a metarec checkpoint of the same backbone (its head is
    dropped), check it fits ``input_size`` with a dry forward pass, and apply the freezing strategy.
    With ``video`` the model takes clips and fuses their frames as the VideoSpec says."""
    entry = get_entry(name)
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ConfigError("n_classes", n_classes, "must be an integer of at least 2")
    if not isinstance(head, HeadSpec):
        raise ConfigError("head", head, "must be a finetune.heads.HeadSpec")
    if video is not None and not isinstance(video, VideoSpec):
        raise ConfigError("video", video, "must be a finetune.heads.VideoSpec or None")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed", seed, "must be a non-negative integer")
    size = _check_input_size(input_size)
    _check_strategy(strategy, last_k, entry)
    if min(size) < entry.min_input_size:
        raise _too_small(entry, size)

    imagenet_state: dict[str, torch.Tensor] | None = None
    ckpt_state: dict[str, torch.Tensor] | None = None
    source, identity, digest = "", PRETRAINED_NONE, ""
    if str(pretrained) == PRETRAINED_IMAGENET:
        imagenet_state, path, digest = _load_imagenet_state(entry)
        source = str(path)
        identity = f"imagenet:{type(entry.weights).__name__}.{entry.weights.name}"  # type: ignore[union-attr]
    elif str(pretrained) != PRETRAINED_NONE:
        path = Path(pretrained)
        ckpt_state, digest = _load_checkpoint_backbone(entry, path)
        source, identity = str(path), f"checkpoint:{path.name}"

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = entry.build_backbone(imagenet_state, source=source)
        torch.manual_seed(seed)  # the head's init does not depend on where the backbone came from
        head_module = Head(entry.channels, n_classes, head)
        model = (FinetuneModel(entry.name, backbone, head_module, size) if video is None
                 else VideoFinetuneModel(entry.name, backbone, head_module, size, video))
    if ckpt_state is not None:
        try:
            backbone.load_state_dict(ckpt_state, strict=True)
        except RuntimeError as exc:
            raise ArtifactError(f"{source}: backbone weights do not fit {entry.name}: "
                                f"{str(exc).splitlines()[0]}") from exc
    model.pretrained, model.pretrained_sha256 = identity, digest
    _dry_run(model, entry, size)
    return apply_strategy(model, strategy, last_k)


def _dry_run(model: FinetuneModel, entry: ZooEntry, size: tuple[int, int]) -> None:
    """One 1-image forward pass in eval mode (no statistics change): the input must give a non-empty map."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            features = model.backbone(torch.zeros(1, 3, *size))
            if features.ndim != 4 or features.shape[2] < 1 or features.shape[3] < 1:
                raise _too_small(entry, size)
            if features.shape[1] != entry.channels:
                raise ArtifactError(f"zoo entry {entry.name} declares {entry.channels} feature channels, "
                                    f"its backbone gives {features.shape[1]}")
            model.head(features)
            if isinstance(model, VideoFinetuneModel):
                model(torch.zeros(1, model.video.frames, 3, *size))
    except RuntimeError as exc:
        raise _too_small(entry, size) from exc
    finally:
        model.train(was_training)
