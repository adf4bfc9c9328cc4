"""EfficientNet-Lite0 (timm) with the packaged ImageNet weights, and the space's ImageNet gating."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from finetune.config import FinetuneConfig
from finetune.model import build_model
from finetune.space import build_search_space, imagenet_installed
from finetune.timm_zoo import LITE0_SHA256, lite0_state_to_timm
from finetune.zoo import get_entry
from metafeatures.errors import ArtifactError, ConfigError
from metafeatures.offline_weights import OFFLINE_FILES, install_packaged

LITE0 = next(f for f in OFFLINE_FILES if f.model == "efficientnet_lite0")
MOBILENET = OFFLINE_FILES[0]


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """A torch hub cache with nothing in it and no METAREC_WEIGHTS_DIR."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("METAREC_WEIGHTS_DIR", raising=False)
    return tmp_path / "hub"


def _imagenet_batch(images: list[np.ndarray], size: int = 224) -> torch.Tensor:
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    arrs = [(np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255
             - mean) / std for im in images]
    return torch.tensor(np.stack(arrs), dtype=torch.float32).permute(0, 3, 1, 2)


@pytest.mark.pretrained
def test_packaged_lite0_weights_classify_known_images(empty_hub):
    """The packaged file (sha256-checked) maps strictly onto timm's efficientnet_lite0 and names scikit-image's
    cat photo an Egyptian cat (285) and its coffee photo an espresso (967), as ImageNet classes."""
    import skimage.data

    path = install_packaged(LITE0, empty_hub / "checkpoints")
    assert path.name == "efficientnet-lite0-57934424.pth"
    state = lite0_state_to_timm(torch.load(path, map_location="cpu", weights_only=True))
    full = get_entry("efficientnet_lite0").build_full().eval()
    full.load_state_dict(state, strict=True)
    with torch.no_grad():
        probs = full(_imagenet_batch([skimage.data.chelsea(), skimage.data.coffee()])).softmax(1)
    assert probs.argmax(1).tolist() == [285, 967]
    assert probs[0, [281, 282, 285]].sum() > 0.8 and probs[1, 967] > 0.5  # cat classes; espresso

    # the zoo's backbone is that network cut before pooling, with exactly those weights
    model = build_model("efficientnet_lite0", 4, pretrained="imagenet", strategy="frozen", input_size=(32, 32))
    assert model.pretrained == "imagenet:PackagedWeights.IMAGENET1K_LITE0" and model.pretrained_sha256 == LITE0_SHA256
    ref = dict(full.state_dict())
    got = model.backbone.state_dict()
    assert torch.equal(got["stem.0.weight"], ref["conv_stem.weight"])
    assert torch.equal(got["stage7.0.conv_pwl.weight"], ref["blocks.6.0.conv_pwl.weight"])
    assert torch.equal(got["head.1.running_var"], ref["bn2.running_var"])
    x = _imagenet_batch([skimage.data.chelsea()], 64)
    with torch.no_grad():
        assert torch.allclose(model.backbone(x), full.forward_features(x), atol=1e-5)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_lite0_key_map_refuses_foreign_keys():
    with pytest.raises(ArtifactError, match="unexpected key"):
        lite0_state_to_timm({"features.0.weight": torch.zeros(1)})


def test_lite0_blocks_for_last_k():
    entry = get_entry("efficientnet_lite0")
    assert entry.n_blocks == 9 and entry.channels == 1280
    model = build_model("efficientnet_lite0", 3, strategy="last_k", last_k=2, input_size=(16, 16))
    trainable = {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone")}
    assert trainable == {"stage7", "head"}


def test_space_offers_imagenet_only_where_installed(empty_hub):
    kinds = ("mobilenet_v2", "efficientnet_lite0", "lenet")
    assert not any(imagenet_installed(b) for b in kinds)
    nothing = build_search_space(backbones=kinds, pretrained=("imagenet", "none"), gate_imagenet=True)
    assert list(nothing["pretrained"].choices) == ["none"]
    with pytest.raises(ConfigError, match="no backbone of the space has its ImageNet weights installed"):
        build_search_space(backbones=kinds, pretrained=("imagenet",), gate_imagenet=True)

    install_packaged(LITE0, empty_hub / "checkpoints")
    space = build_search_space(backbones=kinds, pretrained=("imagenet", "none"), seed=3, gate_imagenet=True)
    pairs = {(c["backbone"], c["pretrained"]) for c in space.sample_configuration(200)}
    assert ("efficientnet_lite0", "imagenet") in pairs
    assert {p for p in pairs if p[1] == "imagenet"} == {("efficientnet_lite0", "imagenet")}
    default = FinetuneConfig.from_configspace(space.get_default_configuration())
    assert (default.backbone, default.pretrained) == ("mobilenet_v2", "none")  # its file is missing here

    install_packaged(MOBILENET, empty_hub / "checkpoints")
    both = build_search_space(backbones=kinds, pretrained=("imagenet", "none"), seed=3, gate_imagenet=True)
    assert FinetuneConfig.from_configspace(both.get_default_configuration()) == FinetuneConfig()
    assert {c["backbone"] for c in both.sample_configuration(200) if c["pretrained"] == "imagenet"} == \
        {"mobilenet_v2", "efficientnet_lite0"}
    ungated = build_search_space(backbones=kinds, pretrained=("imagenet", "none"))  # a portfolio's recorded space
    assert "lenet" in {c["backbone"] for c in ungated.sample_configuration(200) if c["pretrained"] == "imagenet"}
