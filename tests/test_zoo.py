"""Model zoo, heads, freezing strategies, weight sources and checkpoints of the fine-tuning engine."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from torch import nn

from finetune import zoo
from finetune.checkpoint import CHECKPOINT_FORMAT_VERSION, load_checkpoint, model_from_checkpoint, save_checkpoint
from finetune.heads import Head, HeadSpec
from finetune.model import FinetuneModel, apply_strategy, build_model
from finetune.zoo import count_flops, count_parameters, get_entry, list_models, measure_latency, register_model
from metafeatures.errors import ArtifactError, ConfigError, WeightsNotFoundError
from metafeatures.offline_weights import SHA256, install_offline_weights

ALL = ["alexnet", "efficientnet_b0", "efficientnet_lite0", "efficientnet_mini", "googlenet", "lenet", "mobilenet_v2",
       "mobilenet_v3_large", "mobilenet_v3_small", "resnet18", "resnet34", "resnet50", "vgg11_bn"]


def _size(name: str) -> int:
    """A small square input each entry supports (≤ 64 px)."""
    return max(32, get_entry(name).min_input_size)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on 2 shared cores, each of the many tiny parallel regions of a depthwise convolution
    waits for a descheduled second thread (seconds per forward pass); one thread gives the same results."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """A torch hub cache with nothing in it and no METAREC_WEIGHTS_DIR."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("METAREC_WEIGHTS_DIR", raising=False)
    return tmp_path / "hub"


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _step(model: FinetuneModel, size: int, seed: int = 0) -> None:
    """One SGD step in train mode on a seeded batch of 2."""
    torch.manual_seed(seed)
    model.train()
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.1)
    x = torch.randn(2, 3, size, size)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1]))
    opt.zero_grad()
    loss.backward()
    opt.step()


# ---- registry -------------------------------------------------------------------------------------------


def test_registry_lists_the_zoo_and_refuses_duplicates_and_unknown_names():
    assert list_models() == ALL
    with pytest.raises(ValueError, match="already registered"):
        register_model(get_entry("resnet18"))
    with pytest.raises(ConfigError, match="unknown zoo model") as err:
        get_entry("resnet19")
    assert err.value.field == "backbone" and "mobilenet_v2" in str(err.value)


@pytest.mark.parametrize("name", ALL)
def test_entry_feature_map_blocks_and_min_size(name):
    """The backbone gives (N, C, h, w) with the declared C; blocks are its children; min size is tight."""
    entry = get_entry(name)
    torch.manual_seed(0)
    backbone = entry.build_backbone().eval()
    assert len(entry.blocks(backbone)) == entry.n_blocks >= 2
    block_ids = {id(m) for _, m in entry.blocks(backbone)}
    assert block_ids <= {id(m) for m in backbone.modules()}
    assert (entry.weights is None) == (name in {"lenet", "efficientnet_mini"})
    with torch.no_grad():
        out = backbone(torch.zeros(1, 3, entry.min_input_size, entry.min_input_size))
        assert out.ndim == 4 and out.shape[:2] == (1, entry.channels) and min(out.shape[2:]) >= 1
        if entry.min_input_size > 1:
            smaller = entry.min_input_size - 1
            try:
                out = backbone(torch.zeros(1, 3, smaller, smaller))
            except RuntimeError:
                pass
            else:
                assert min(out.shape[2:]) == 0, f"{name} works at {smaller}: min_input_size is not the smallest"


# ---- heads ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "linears", "convs"), [
    (HeadSpec(layers=1), 1, 0), (HeadSpec(), 2, 0), (HeadSpec(conv1x1=True, layers=3, width=16), 3, 1)])
def test_head_shapes(spec, linears, convs):
    head = Head(24, 5, spec)
    assert sum(isinstance(m, nn.Linear) for m in head.modules()) == linears
    assert sum(isinstance(m, nn.Conv2d) for m in head.modules()) == convs
    assert sum(isinstance(m, nn.Dropout) for m in head.modules()) == linears
    assert head(torch.randn(2, 24, 3, 3)).shape == (2, 5)


@pytest.mark.parametrize(("field", "value"), [
    ("layers", 0), ("layers", 4), ("layers", 2.0), ("width", 0), ("dropout", 1.0), ("dropout", -0.1),
    ("conv1x1", "yes")])
def test_head_spec_is_validated(field, value):
    with pytest.raises(ValueError, match=field) as err:
        HeadSpec(**{field: value})
    assert isinstance(err.value, ConfigError) and err.value.field == field
    assert HeadSpec.from_dict(HeadSpec(conv1x1=True).to_dict()) == HeadSpec(conv1x1=True)


# ---- strategies and one training step --------------------------------------------------------------------


def _names_under(model: FinetuneModel, prefixes: list[str]) -> set[str]:
    return {n for n, _ in model.named_parameters() if any(n.startswith(p + ".") for p in prefixes)}


@pytest.mark.parametrize("strategy", ["frozen", "last_k", "full"])
@pytest.mark.parametrize("name", ALL)
def test_strategy_and_one_step(name, strategy):
    """Exactly the strategy's parameters train; one step changes them and nothing frozen (BN stats included)."""
    size = _size(name)
    entry = get_entry(name)
    k = 2
    model = build_model(name, 3, strategy=strategy, last_k=k, input_size=(size, size))
    assert model.strategy == strategy and model.last_k == (k if strategy == "last_k" else None)
    all_names = {n for n, _ in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    head = _names_under(model, ["head"])
    if strategy == "frozen":
        expected = head
    elif strategy == "last_k":
        expected = head | _names_under(model, [f"backbone.{b}" for b in entry.block_names[-k:]])
    else:
        expected = all_names
    assert trainable == expected and head <= trainable
    expected_ids = {id(p) for n, p in model.named_parameters() if n in expected}
    assert {id(p) for p in model.trainable_parameters()} == expected_ids
    assert count_parameters(model, trainable_only=True) == sum(p.numel() for p in model.trainable_parameters())

    before = _snapshot(model)
    _step(model, size)
    after = model.state_dict()
    frozen_modules = {id(m) for m in model._frozen_modules}
    for mod_name, module in model.named_modules():
        frozen = id(module) in frozen_modules
        assert module.training != frozen, f"{mod_name}: training={module.training} but frozen={frozen}"
    param_names = set(all_names)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed & param_names <= trainable
    # the output layer always learns (an untrained frozen backbone in eval mode may give near-zero features)
    assert f"head.fc.{len(model.head.fc) - 1}.bias" in changed
    if strategy == "last_k":
        for block in entry.block_names[-k:]:
            assert any(n.startswith(f"backbone.{block}.") for n in changed), f"block {block} did not train"
    # buffers (BatchNorm running statistics) move only inside trainable blocks
    frozen_prefixes = ["backbone." + n for n, m in model.backbone.named_modules() if id(m) in frozen_modules and n]
    for key in set(before) - param_names:
        if strategy == "frozen" or any(key.startswith(p + ".") for p in frozen_prefixes):
            assert key not in changed, f"frozen buffer {key} changed"
    if strategy == "full" and any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules()):
        assert any(k.endswith("running_mean") for k in changed), "BatchNorm statistics update when training fully"


def test_frozen_backbone_stays_in_eval_mode_and_keeps_its_statistics():
    model = build_model("resnet18", 4, strategy="frozen", input_size=(32, 32))
    model.train()
    assert model.training and model.head.training
    assert not any(m.training for m in model.backbone.modules())
    stats = {k: v.clone() for k, v in model.backbone.state_dict().items() if "running" in k}
    model(torch.randn(2, 3, 32, 32) * 3 + 1)
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in stats.items())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    # switching strategy later unfreezes again
    apply_strategy(model, "full")
    assert all(p.requires_grad for p in model.parameters()) and all(m.training for m in model.modules())


@pytest.mark.parametrize("last_k", [0, 5, -1, True])
def test_last_k_out_of_range_is_a_config_error(last_k):
    with pytest.raises(ConfigError, match="last_k") as err:
        build_model("resnet18", 3, strategy="last_k", last_k=last_k, input_size=(32, 32))
    assert err.value.field == "last_k" and "4 blocks" in str(err.value)


def test_bad_arguments_are_config_errors():
    for kwargs, field in [({"strategy": "partial"}, "strategy"), ({"n_classes": 1}, "n_classes"),
                          ({"input_size": (32,)}, "input_size"), ({"seed": -1}, "seed"),
                          ({"pretrained": "imagenet", "name": "lenet"}, "pretrained"),
                          ({"pretrained": "imagenet", "name": "efficientnet_mini"}, "pretrained")]:
        args = {"name": "lenet", "n_classes": 3, "input_size": (32, 32), **kwargs}
        with pytest.raises(ConfigError) as err:
            build_model(**args)
        assert err.value.field == field, kwargs
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        build_model("efficientnet_mini", 3, pretrained="imagenet")


# ---- input size -----------------------------------------------------------------------------------------


def test_too_small_input_is_refused_before_training():
    with pytest.raises(ConfigError) as err:
        build_model("alexnet", 10, input_size=(16, 16))
    assert err.value.field == "input_size"
    assert "backbone alexnet does not fit input 16x16: needs at least 63x63" in str(err.value)
    with pytest.raises(ConfigError, match="needs at least 32x32"):
        build_model("vgg11_bn", 10, input_size=(31, 64))


def test_dry_forward_catches_a_size_the_declared_minimum_lets_through(monkeypatch):
    """Even with a wrong min_input_size in the zoo, the dry forward pass turns the failure into a ConfigError."""
    entry = dataclasses.replace(get_entry("alexnet"), min_input_size=1)
    monkeypatch.setitem(zoo._REGISTRY, "alexnet", entry)
    with pytest.raises(ConfigError, match="backbone alexnet does not fit input 40x40") as err:
        build_model("alexnet", 10, input_size=(40, 40))
    assert isinstance(err.value.__cause__, RuntimeError)


def test_non_square_input_and_seeding():
    a = build_model("resnet18", 3, input_size=(32, 48), seed=1)
    b = build_model("resnet18", 3, input_size=(32, 48), seed=1)
    c = build_model("resnet18", 3, input_size=(32, 48), seed=2)
    x = torch.randn(2, 3, 32, 48)
    a.eval(), b.eval(), c.eval()
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))
    assert a(x).shape == (2, 3)


# ---- cost -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_parameter_count_and_flops(name):
    model = build_model(name, 10, input_size=(_size(name), _size(name)))
    n = count_parameters(model)
    assert n > 0 and n == sum(p.numel() for p in model.parameters())
    assert count_parameters(model.head) == sum(p.numel() for p in model.head.parameters())
    small, large = _size(name), 2 * _size(name)
    f_small, f_large = count_flops(name, (small, small)), count_flops(name, (large, large))
    assert 0 < f_small < f_large


def test_flops_match_a_hand_count_for_lenet():
    """FlopCounterMode counts 2 FLOPs per multiply-add of convolutions and linear layers."""
    h = 8
    convs = 2 * (16 * 3 * 25 * h * h + 32 * 16 * 25 * (h // 2) ** 2 + 64 * 32 * 9 * (h // 4) ** 2)
    linears = 2 * (64 * 512 + 512 * 10)
    assert count_flops("lenet", (h, h), n_classes=10) == convs + linears


def test_latency_is_positive_and_keeps_the_mode():
    model = build_model("lenet", 3, input_size=(32, 32)).train()
    seconds = measure_latency(model, (32, 32), batch_size=2, repeats=3)
    assert 0 < seconds < 5 and model.training


# ---- weights sources ------------------------------------------------------------------------------------


def test_missing_imagenet_weights_name_the_file(empty_hub):
    with pytest.raises(WeightsNotFoundError) as err:
        build_model("resnet18", 3, pretrained="imagenet", input_size=(32, 32))
    assert "resnet18-f37072fd.pth" in str(err.value) and str(empty_hub / "checkpoints") in str(err.value)


def test_imagenet_file_with_a_wrong_hash_is_refused(empty_hub):
    (empty_hub / "checkpoints").mkdir(parents=True)
    torch.save({}, empty_hub / "checkpoints" / "googlenet-1378be20.pth")
    with pytest.raises(ArtifactError, match="does not match the hash prefix"):
        build_model("googlenet", 3, pretrained="imagenet", input_size=(32, 32))


def test_full_torchvision_state_dict_loads_strictly_before_the_cut():
    """googlenet's ImageNet layout carries auxiliary heads: they load strictly and are then dropped."""
    entry = get_entry("googlenet")
    torch.manual_seed(0)
    state = entry.build_full().state_dict()
    assert any(k.startswith("aux1.") for k in state) and "fc.weight" in state
    backbone = entry.build_backbone(state, source="test")
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert not any(p.is_meta for p in backbone.parameters()) and all(p.requires_grad for p in backbone.parameters())
    del state["conv1.conv.weight"]
    with pytest.raises(ArtifactError, match="does not fit googlenet"):
        entry.build_backbone(state, source="test")


@pytest.mark.pretrained
def test_mobilenet_v2_imagenet_weights_load(empty_hub):
    path = install_offline_weights(empty_hub / "checkpoints")
    model = build_model("mobilenet_v2", 7, pretrained="imagenet", strategy="frozen", input_size=(32, 32))
    assert model.pretrained == "imagenet:MobileNet_V2_Weights.IMAGENET1K_V1" and model.pretrained_sha256 == SHA256
    reference = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, reference[f"features.{key}"]), key
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


# ---- checkpoints ----------------------------------------------------------------------------------------


def _trained(name: str = "mobilenet_v3_small", n_classes: int = 3, **kwargs) -> FinetuneModel:
    model = build_model(name, n_classes, input_size=(32, 32), **kwargs)
    _step(model, 32)
    return model


def test_checkpoint_round_trip_gives_identical_logits(tmp_path):
    model = _trained(strategy="last_k", last_k=3, head=HeadSpec(conv1x1=True, layers=3, width=32, dropout=0.1))
    config = {"backbone": "mobilenet_v3_small", "lr": 0.01, "input_size": "adaptive", "nested": {"a": [1, 2.5]}}
    path = save_checkpoint(tmp_path / "run" / "model.pt", model, config, ["cat", "dog", "eel"], extra={"step": 1})
    assert path.is_file() and not list(path.parent.glob(".*partial"))
    ckpt = load_checkpoint(path)
    assert ckpt.format_version == CHECKPOINT_FORMAT_VERSION and ckpt.zoo_name == "mobilenet_v3_small"
    assert ckpt.class_names == ["cat", "dog", "eel"] and ckpt.config == config and ckpt.extra == {"step": 1}
    assert ckpt.head == model.head_spec and ckpt.input_size == (32, 32) and ckpt.torch_version == torch.__version__
    assert re.match(r"\d{4}-\d\d-\d\dT", ckpt.created_at)
    rebuilt = model_from_checkpoint(ckpt)
    assert rebuilt.strategy == "last_k" and rebuilt.last_k == 3 and not rebuilt.training
    assert [p.requires_grad for p in rebuilt.parameters()] == [p.requires_grad for p in model.parameters()]
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))


def test_checkpoint_refuses_non_plain_config(tmp_path):
    model = build_model("lenet", 2, input_size=(16, 16))
    with pytest.raises(ValueError, match="config"):
        save_checkpoint(tmp_path / "m.pt", model, {"out": tmp_path}, ["a", "b"])
    with pytest.raises(ValueError, match="class_names"):
        save_checkpoint(tmp_path / "m.pt", model, {}, ["a"])
    assert not (tmp_path / "m.pt").exists()


def test_tampered_or_foreign_checkpoints_are_artifact_errors(tmp_path):
    model = build_model("lenet", 2, input_size=(16, 16))
    path = save_checkpoint(tmp_path / "m.pt", model, {}, ["a", "b"])
    data = torch.load(path, weights_only=True)
    for change, message in [({"format_version": 99}, "format version 99 is not supported"),
                            ({"format_version": None}, "format version None"),
                            ({"zoo_name": "lenet5"}, "unknown zoo model"),
                            ({"class_names": ["a"]}, "class_names")]:
        bad = tmp_path / "bad.pt"
        torch.save({**data, **change}, bad)
        with pytest.raises(ArtifactError, match=message) as err:
            load_checkpoint(bad)
        assert str(bad) in str(err.value)
    torch.save({k: v for k, v in data.items() if k != "state_dict"}, tmp_path / "nostate.pt")
    with pytest.raises(ArtifactError, match="lacks state_dict"):
        load_checkpoint(tmp_path / "nostate.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ArtifactError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(ArtifactError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_of_another_backbone_is_refused_as_pretrained_source(tmp_path):
    path = save_checkpoint(tmp_path / "lenet.pt", build_model("lenet", 2, input_size=(16, 16)), {}, ["a", "b"])
    with pytest.raises(ArtifactError, match="holds backbone lenet, cannot initialise mobilenet_v3_small"):
        build_model("mobilenet_v3_small", 2, pretrained=str(path), input_size=(32, 32))
    with pytest.raises(WeightsNotFoundError, match="no such file"):
        build_model("lenet", 2, pretrained=str(tmp_path / "nope.pt"), input_size=(16, 16))


def test_checkpoint_as_pretrained_source_for_other_classes(tmp_path):
    source = _trained(n_classes=3)
    path = save_checkpoint(tmp_path / "src.pt", source, {}, ["a", "b", "c"])
    model = build_model("mobilenet_v3_small", 5, pretrained=path, strategy="frozen", input_size=(32, 32))
    assert model.pretrained == "checkpoint:src.pt" and model.n_classes == 5
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(value, model.backbone.state_dict()[key]), key
    assert model.head.fc[-1].out_features == 5
    fresh = build_model("mobilenet_v3_small", 5, input_size=(32, 32))
    for key, value in fresh.head.state_dict().items():
        assert torch.equal(value, model.head.state_dict()[key]), "a new head, seeded as without a source"
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
