"""Model zoo for fine-tuning: backbones by name, cut to a 4-D feature map, with blocks, weights, size, cost.

Every entry builds a torchvision network (or a small LeNet) without its global pooling and classifier,
so ``backbone(x)`` maps (N, 3, H, W) to a feature map (N, C, h, w) that ``finetune.heads`` pools and
classifies. Parameter counts and FLOPs are computed from the built modules, never typed in.
"""

from __future__ import annotations

import statistics
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision import models
from torchvision.models import WeightsEnum
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

from finetune.heads import HeadSpec
from finetune.nas.names import is_searched_name
from metafeatures.errors import ArtifactError, ConfigError


@dataclass(frozen=True)
class ZooEntry:
    """How to build one backbone (untrained or from a torchvision state dict) and what it looks like.

    ``build_full`` makes the whole torchvision model, shaped as its ImageNet state dict expects;
    ``to_features`` cuts it after the last convolutional stage (no pooling, no classifier);
    ``block_names`` name the backbone's children that form the ordered blocks of the ``last_k``
    strategy; ``build_untrained`` is an optional faster path that skips a large classifier.
    """

    name: str
    channels: int
    weights: WeightsEnum | None
    min_input_size: int
    build_full: Callable[[], nn.Module]
    to_features: Callable[[nn.Module], nn.Module]
    block_names: tuple[str, ...]
    build_untrained: Callable[[], nn.Module] | None = None
    description: str = ""

    @property
    def n_blocks(self) -> int:
        """Number of blocks the ``last_k`` strategy can unfreeze."""
        return len(self.block_names)

    def build_backbone(self, state_dict: Mapping[str, torch.Tensor] | None = None, source: str = "") -> nn.Module:
        """The feature extractor: untrained (with the caller's RNG), or loaded strictly from a full-model
        torchvision state dict before the classifier is cut off (``source`` names the file in errors)."""
        if state_dict is None:
            if self.build_untrained is not None:
                return self.build_untrained()
            return self.to_features(self.build_full())
        with torch.device("meta"):  # no time spent initialising weights that the state dict replaces
            full = self.build_full()
        try:
            full.load_state_dict(state_dict, strict=True, assign=True)
        except RuntimeError as exc:
            raise ArtifactError(
                f"{source or 'state dict'}: does not fit {self.name}: {str(exc).splitlines()[0]}") from exc
        features = self.to_features(full)
        left = [k for k, t in features.state_dict().items() if t.is_meta]
        if left:
            raise ArtifactError(f"{source or 'state dict'}: no values for {self.name} tensors {left[:3]}")
        return features

    def blocks(self, backbone: nn.Module) -> list[tuple[str, nn.Module]]:
        """The backbone's blocks in forward order as (name, module), for the ``last_k`` strategy."""
        return [(name, backbone.get_submodule(name)) for name in self.block_names]


_REGISTRY: dict[str, ZooEntry] = {}


def register_model(entry: ZooEntry) -> ZooEntry:
    """Add a zoo entry; a duplicate name is an error (as in torchvision's model registry)."""
    if entry.name in _REGISTRY:
        raise ValueError(f"zoo model {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    return entry


def is_known(name: object) -> bool:
    """Whether ``name`` is a registered model or names a searched one (``nas:<name>``, resolved when built)."""
    return name in _REGISTRY or is_searched_name(name)


def list_models() -> list[str]:
    """Names of the registered zoo models, sorted."""
    return sorted(_REGISTRY)


def get_entry(name: str) -> ZooEntry:
    """Registry lookup; an unknown name raises ConfigError listing the known ones. ``nas:<name>`` is a
    searched network read from disk (``finetune.nas.entry``), never registered here."""
    if is_searched_name(name):
        from finetune.nas.entry import zoo_entry  # imports this module

        return zoo_entry(name)  # type: ignore[no-any-return]
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError("backbone", name, f"unknown zoo model; known: {', '.join(list_models())}") from None


# ---- feature extractors ---------------------------------------------------------------------------------


def _resnet_features(model: nn.Module) -> nn.Module:
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return nn.Sequential(OrderedDict((n, getattr(model, n)) for n in names))


def _features_attr(model: nn.Module) -> nn.Module:
    return model.features  # type: ignore[return-value]


class GoogLeNetInputTransform(nn.Module):
    """torchvision's GoogLeNet ``transform_input``: ImageNet-normalised input → the (x - 0.5) / 0.5 scale
    its ImageNet weights were trained on. Parameter-free, always present so the architecture does not
    depend on where the weights came from."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale the three channels."""
        x0 = x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x1 = x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x2 = x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return torch.cat((x0, x1, x2), 1)


_GOOGLENET_LAYERS = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
                     "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
                     "inception5a", "inception5b")


def _googlenet_features(model: nn.Module) -> nn.Module:
    layers: list[tuple[str, nn.Module]] = [("transform", GoogLeNetInputTransform())]
    layers += [(n, getattr(model, n)) for n in _GOOGLENET_LAYERS]
    return nn.Sequential(OrderedDict(layers))


def _split(seq: nn.Module, prefix: str, starts_group: Callable[[nn.Module], bool]) -> nn.Module:
    """Regroup a flat Sequential into named sub-Sequentials (one per block), keeping the modules."""
    groups: list[list[nn.Module]] = []
    for layer in seq.children():
        if not groups or starts_group(layer):
            groups.append([])
        groups[-1].append(layer)
    return nn.Sequential(OrderedDict((f"{prefix}{i + 1}", nn.Sequential(*g)) for i, g in enumerate(groups)))


def _vgg_features(model: nn.Module) -> nn.Module:
    # a stage ends with its max-pool: start a new group at a conv that follows a pool
    layers = list(model.features.children())  # type: ignore[union-attr]
    stages: list[list[nn.Module]] = [[]]
    for layer in layers:
        stages[-1].append(layer)
        if isinstance(layer, nn.MaxPool2d):
            stages.append([])
    stages = [s for s in stages if s]
    return nn.Sequential(OrderedDict((f"stage{i + 1}", nn.Sequential(*s)) for i, s in enumerate(stages)))


def _alexnet_features(model: nn.Module) -> nn.Module:
    return _split(model.features, "conv", lambda m: isinstance(m, nn.Conv2d))  # type: ignore[arg-type]


def _vgg_init(module: nn.Module) -> None:
    """torchvision's VGG initialisation of the convolutional part."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def _untrained_without_classifier(build_full: Callable[[], nn.Module], to_features: Callable[[nn.Module], nn.Module],
                                  init: Callable[[nn.Module], None] | None = None) -> Callable[[], nn.Module]:
    """Untrained feature extractor of a network whose classifier dwarfs its convolutions (VGG, AlexNet):
    build the structure on the meta device, materialise only the features and initialise those as
    torchvision does (PyTorch's defaults, then the model's own ``init``)."""

    def build() -> nn.Module:
        with torch.device("meta"):
            full = build_full()
        features = to_features(full).to_empty(device="cpu")
        for m in features.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
        if init is not None:
            init(features)
        return features

    return build


# ---- LeNet ----------------------------------------------------------------------------------------------


def lenet_features() -> nn.Module:
    """A LeNet-style extractor for tiny inputs: 5×5, 5×5 and 3×3 convolutions (16, 32, 64 channels) with
    BatchNorm and ReLU, the first two followed by 2×2 max-pooling (28×28 → 7×7)."""

    def block(c_in: int, c_out: int, k: int, pool: bool) -> nn.Sequential:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out),
                                   nn.ReLU(inplace=True)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        return nn.Sequential(*layers)

    return nn.Sequential(OrderedDict([("block1", block(3, 16, 5, True)), ("block2", block(16, 32, 5, True)),
                                      ("block3", block(32, 64, 3, False))]))


def efficientnet_mini() -> nn.Module:
    """Seed 000's EFFICIENTNET-MINI: EfficientNet-B0 scaled by width and depth factor 0.8 (no ImageNet weights)."""
    setting, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=0.8, depth_mult=0.8)
    return EfficientNet(setting, 0.2, last_channel=last_channel)


def _numbered(n: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(n))


def _googlenet(pretrained_layout: bool) -> nn.Module:
    if pretrained_layout:  # the ImageNet state dict carries the auxiliary heads; they are cut off with the rest
        return models.GoogLeNet(aux_logits=True, init_weights=False)
    return models.GoogLeNet(aux_logits=False, init_weights=True)


# Min sizes are the smallest square input whose forward pass works (checked by tests/test_zoo.py).
for _entry in (
    ZooEntry("resnet18", 512, models.ResNet18_Weights.IMAGENET1K_V1, 1, lambda: models.resnet18(),
             _resnet_features, ("layer1", "layer2", "layer3", "layer4"), description="ResNet-18"),
    ZooEntry("resnet34", 512, models.ResNet34_Weights.IMAGENET1K_V1, 1, lambda: models.resnet34(),
             _resnet_features, ("layer1", "layer2", "layer3", "layer4"), description="ResNet-34"),
    ZooEntry("resnet50", 2048, models.ResNet50_Weights.IMAGENET1K_V1, 1, lambda: models.resnet50(),
             _resnet_features, ("layer1", "layer2", "layer3", "layer4"), description="ResNet-50"),
    ZooEntry("mobilenet_v2", 1280, models.MobileNet_V2_Weights.IMAGENET1K_V1, 1, lambda: models.mobilenet_v2(),
             _features_attr, _numbered(19), description="MobileNetV2 (seed 000's backbone)"),
    ZooEntry("mobilenet_v3_small", 576, models.MobileNet_V3_Small_Weights.IMAGENET1K_V1, 1,
             lambda: models.mobilenet_v3_small(), _features_attr, _numbered(13), description="MobileNetV3-Small"),
    ZooEntry("mobilenet_v3_large", 960, models.MobileNet_V3_Large_Weights.IMAGENET1K_V1, 1,
             lambda: models.mobilenet_v3_large(), _features_attr, _numbered(17), description="MobileNetV3-Large"),
    ZooEntry("efficientnet_b0", 1280, models.EfficientNet_B0_Weights.IMAGENET1K_V1, 1,
             lambda: models.efficientnet_b0(), _features_attr, _numbered(9), description="EfficientNet-B0"),
    ZooEntry("efficientnet_mini", 1024, None, 1, efficientnet_mini, _features_attr, _numbered(9),
             description="EfficientNet-B0 × 0.8 width and depth (seed 000)"),
    ZooEntry("vgg11_bn", 512, models.VGG11_BN_Weights.IMAGENET1K_V1, 32, lambda: models.vgg11_bn(),
             _vgg_features, tuple(f"stage{i}" for i in range(1, 6)),
             build_untrained=_untrained_without_classifier(lambda: models.vgg11_bn(), _vgg_features, _vgg_init),
             description="VGG-11 with BatchNorm"),
    ZooEntry("googlenet", 1024, models.GoogLeNet_Weights.IMAGENET1K_V1, 15, lambda: _googlenet(True),
             _googlenet_features, ("conv1", "conv2", "conv3", "inception3a", "inception3b", "inception4a",
                                   "inception4b", "inception4c", "inception4d", "inception4e", "inception5a",
                                   "inception5b"),
             build_untrained=lambda: _googlenet_features(_googlenet(False)), description="GoogLeNet (Inception v1)"),
    ZooEntry("alexnet", 256, models.AlexNet_Weights.IMAGENET1K_V1, 63, lambda: models.alexnet(),
             _alexnet_features, tuple(f"conv{i}" for i in range(1, 6)),
             build_untrained=_untrained_without_classifier(lambda: models.alexnet(), _alexnet_features),
             description="AlexNet"),
    ZooEntry("lenet", 64, None, 4, lenet_features, lambda m: m, ("block1", "block2", "block3"),
             description="LeNet-style net for tiny inputs"),
):
    register_model(_entry)


# ---- cost -----------------------------------------------------------------------------------------------


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared ones once), optionally only those that require grad."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def count_flops(name: str, input_size: tuple[int, int] = (64, 64), n_classes: int = 10,
                head: HeadSpec | None = None) -> int:
    """FLOPs of one forward pass of a 1-image batch through backbone + head, counted by torch's
    FlopCounterMode (2 per multiply-add; convolutions and matmuls only)."""
    from finetune.model import build_model  # the model module imports this one

    model = build_model(name, n_classes, pretrained="none", head=head or HeadSpec(), input_size=input_size).eval()
    x = torch.zeros(1, 3, *input_size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return int(counter.get_total_flops())


def measure_latency(model: nn.Module, input_size: tuple[int, int], batch_size: int = 1, repeats: int = 10) -> float:
    """Median seconds per forward pass of a batch (inference mode, eval mode, after warm-up) on the
    device the model lives on; the model's train/eval mode is restored afterwards."""
    if repeats < 1 or batch_size < 1:
        raise ConfigError("repeats" if repeats < 1 else "batch_size", repeats if repeats < 1 else batch_size,
                          "must be at least 1")
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(batch_size, 3, *input_size, device=device)
    was_training = model.training
    model.eval()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times: list[float] = []
    try:
        with torch.inference_mode():
            for _ in range(2):
                model(x)
            sync()
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(x)
                sync()
                times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    return float(statistics.median(times))


# timm-built entries (EfficientNet-Lite0) register themselves; imported last because that module imports this one.
from finetune import timm_zoo as _timm_zoo  # noqa: E402,F401
