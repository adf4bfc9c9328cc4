"""FinetuneConfig validation and serialisation, and the seed 001 §6.2 ConfigSpace search space."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ConfigSpace import ConfigurationSpace

from finetune.config import (
    CONFIG_FORMAT_VERSION,
    SGD_MOMENTUM,
    SGD_NESTEROV,
    SGD_WEIGHT_DECAY,
    ZOO_NAMES,
    FinetuneConfig,
    known_backbones,
)
from finetune.space import (
    DEFAULT_BACKBONES,
    SPACE_FORMAT_VERSION,
    build_search_space,
    space_from_dict,
    space_to_dict,
)
from metafeatures.errors import ArtifactError, ConfigError, MetarecError


@pytest.fixture(scope="module")
def space() -> ConfigurationSpace:
    return build_search_space(seed=0)


def test_defaults_are_valid_and_documented():
    cfg = FinetuneConfig()
    assert cfg.backbone == "mobilenet_v2" and cfg.pretrained == "imagenet" and cfg.strategy == "full"
    assert cfg.optimizer == "adam" and cfg.batch_size == 32 and cfg.lr == 1e-3 and cfg.dropout == 0.2
    assert cfg.input_size == "adaptive" and cfg.max_edge == 128 and cfg.format_version == CONFIG_FORMAT_VERSION
    assert cfg.pretrained_kind == "imagenet"


def test_json_round_trip():
    cfg = FinetuneConfig(backbone="resnet18", pretrained="/tmp/ckpt.pt", strategy="last_k", last_k=3,
                         optimizer="sgd", batch_size=64, lr=0.05, dropout=0.5, head_layers=3, head_width=64,
                         head_conv1x1=True, input_size=48, max_edge=96, seed=7)
    text = cfg.to_json()
    assert json.loads(text)["input_size"] == 48
    back = FinetuneConfig.from_json(text)
    assert back == cfg and back.to_json() == text and back.digest() == cfg.digest()
    assert FinetuneConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.pretrained_kind == "checkpoint"
    assert FinetuneConfig.from_json(FinetuneConfig().to_json()) == FinetuneConfig()


def test_config_is_frozen_and_hashable():
    cfg = FinetuneConfig()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        cfg.lr = 0.1  # type: ignore[misc]
    assert hash(cfg) == hash(FinetuneConfig())
    assert cfg.replace(lr=0.1).lr == 0.1
    with pytest.raises(ConfigError):
        cfg.replace(lr=-1.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("backbone", "nope"),
        ("lr", 0),
        ("lr", 2),
        ("lr", float("nan")),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("batch_size", 0),
        ("batch_size", 2048),
        ("head_layers", 4),
        ("head_width", 4),
        ("input_size", 4),
        ("input_size", "large"),
        ("input_size", True),
        ("optimizer", "rmsprop"),
        ("strategy", "partial"),
        ("last_k", 0),
        ("pretrained", ""),
        ("max_edge", 2),
        ("seed", -1),
        ("nope_extra_key", 1),
        ("format_version", 2),
    ],
)
def test_invalid_field_raises_config_error_naming_it(field, value):
    with pytest.raises(ConfigError) as info:
        FinetuneConfig.from_dict({field: value})
    assert info.value.field == field
    assert isinstance(info.value, MetarecError)
    assert str(info.value).startswith(f"{field}=")
    with pytest.raises(ConfigError) as info2:
        FinetuneConfig(**{field: value})
    assert info2.value.field == field
    with pytest.raises(ConfigError) as info3:
        FinetuneConfig.model_validate({field: value})
    assert info3.value.field == field


def test_bad_json_and_non_mapping_refused():
    with pytest.raises(ConfigError):
        FinetuneConfig.from_json("{not json")
    with pytest.raises(ConfigError):
        FinetuneConfig.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        FinetuneConfig.from_json('{"format_version": 2}')
    assert info.value.field == "format_version"


def test_backbones_are_the_zoo():
    assert set(DEFAULT_BACKBONES) <= set(known_backbones())
    assert set(known_backbones()) <= set(ZOO_NAMES) | set(known_backbones())
    for name in known_backbones():
        assert FinetuneConfig(backbone=name).backbone == name


def test_sgd_constants():
    sgd = FinetuneConfig(optimizer="sgd", lr=0.01)
    assert (SGD_MOMENTUM, SGD_NESTEROV, SGD_WEIGHT_DECAY) == (0.9, True, 1e-6)
    assert sgd.momentum == 0.9 and sgd.nesterov is True and sgd.weight_decay == 1e-6
    assert sgd.optimizer_kwargs() == {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-6}
    adam = FinetuneConfig(optimizer="adam")
    assert adam.optimizer_kwargs() == {"lr": 1e-3} and adam.weight_decay == 0.0 and adam.nesterov is False
    # constants are not free fields
    for name in ("momentum", "nesterov", "weight_decay"):
        with pytest.raises(ConfigError) as info:
            FinetuneConfig.from_dict({name: 0.5})
        assert info.value.field == name
    assert "momentum" not in FinetuneConfig().to_dict()


def test_head_spec_and_target_size():
    spec = FinetuneConfig(head_layers=3, head_width=64, head_conv1x1=True, dropout=0.3).head_spec()
    keys = ("conv1x1", "layers", "width", "dropout")
    values = spec if isinstance(spec, dict) else {k: getattr(spec, k) for k in keys}
    assert values == {"conv1x1": True, "layers": 3, "width": 64, "dropout": 0.3}
    assert FinetuneConfig().target_size(300.0, 150.0) == (128, 64)
    assert FinetuneConfig().target_size(28.0, 28.0) == (28, 28)
    assert FinetuneConfig(max_edge=64).target_size(256.0, 256.0) == (64, 64)
    assert FinetuneConfig(input_size=32).target_size(300.0, 150.0) == (32, 32)


def test_space_shape(space):
    names = set(space.keys())
    assert names == {"backbone", "pretrained", "optimizer", "strategy", "batch_size", "lr", "dropout",
                     "head_layers", "last_k"}
    assert list(space["batch_size"].choices) == [16, 32, 64, 128]
    assert (space["lr"].lower, space["lr"].upper, space["lr"].log) == (1e-5, 0.5, True)
    assert (space["dropout"].lower, space["dropout"].upper) == (0.01, 0.99)
    assert (space["last_k"].lower, space["last_k"].upper) == (1, 4)
    assert set(space["optimizer"].choices) == {"adam", "sgd"}
    assert list(space["backbone"].choices) == list(DEFAULT_BACKBONES)


def test_sampled_configurations_are_valid_and_round_trip(space):
    space.seed(123)
    samples = space.sample_configuration(200)
    strategies = set()
    for sample in samples:
        cfg = FinetuneConfig.from_configspace(sample)
        strategies.add(cfg.strategy)
        plain = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in dict(sample).items()}
        assert cfg.to_configspace_dict() == plain
        assert cfg.to_configuration(space) == sample
        # hpbandster hands over a plain dict
        assert FinetuneConfig.from_configspace(dict(sample)) == cfg
        assert FinetuneConfig.from_json(cfg.to_json()) == cfg
    assert strategies == {"frozen", "last_k", "full"}


def test_numpy_scalars_accepted():
    cfg = FinetuneConfig.from_configspace({
        "backbone": np.str_("resnet18"), "pretrained": np.str_("none"), "optimizer": np.str_("sgd"),
        "strategy": np.str_("last_k"), "last_k": np.int64(2), "batch_size": np.int64(64),
        "lr": np.float64(0.01), "dropout": np.float32(0.5), "head_layers": np.int32(3),
    })
    assert cfg.batch_size == 64 and type(cfg.batch_size) is int and type(cfg.lr) is float
    assert cfg.last_k == 2 and cfg.backbone == "resnet18" and type(cfg.backbone) is str
    assert FinetuneConfig(head_conv1x1=np.bool_(True), seed=np.uint32(5)).head_conv1x1 is True
    json.dumps(cfg.to_dict())


def test_from_configspace_base_and_inactive_last_k():
    base = FinetuneConfig(seed=3, head_width=64, input_size=32)
    cfg = FinetuneConfig.from_configspace({"strategy": "full", "lr": 0.1}, base=base)
    assert (cfg.seed, cfg.head_width, cfg.input_size, cfg.lr) == (3, 64, 32, 0.1)
    # an inactive last_k is dropped, so equal choices give equal configs
    assert FinetuneConfig.from_configspace({"strategy": "frozen", "last_k": 3}).last_k == 1
    with pytest.raises(ConfigError) as info:
        FinetuneConfig.from_configspace({"lr": np.float64(0.0)})
    assert info.value.field == "lr"


def test_last_k_active_only_with_last_k_strategy(space):
    space.seed(5)
    for sample in space.sample_configuration(100):
        values = dict(sample)
        assert ("last_k" in values) == (values["strategy"] == "last_k")
    assert "last_k" not in FinetuneConfig(strategy="full").to_configspace_dict()
    assert FinetuneConfig(strategy="last_k", last_k=2).to_configspace_dict()["last_k"] == 2
    no_last_k = build_search_space(strategies=("frozen", "full"))
    assert "last_k" not in set(no_last_k.keys())


def test_space_defaults_are_the_config_defaults(space):
    default = space.get_default_configuration()
    assert FinetuneConfig.from_configspace(default) == FinetuneConfig()


def test_space_serialisation_round_trip(space):
    d = space_to_dict(space)
    assert d["space_format_version"] == SPACE_FORMAT_VERSION and isinstance(d["configspace_version"], str)
    text = json.dumps(d)
    back = space_from_dict(json.loads(text), seed=1)
    assert back == space
    assert space_from_dict(d) == space  # d is not consumed
    assert space_from_dict(d) == space
    assert FinetuneConfig.from_configspace(back.sample_configuration()).backbone in DEFAULT_BACKBONES


def test_wrong_space_format_refused(space):
    d = space_to_dict(space)
    with pytest.raises(ArtifactError, match="space_format_version"):
        space_from_dict({**d, "space_format_version": SPACE_FORMAT_VERSION + 1})
    with pytest.raises(ArtifactError):
        space_from_dict({k: v for k, v in d.items() if k != "space_format_version"})
    with pytest.raises(ArtifactError):
        space_from_dict({**d, "space": {"hyperparameters": [{"name": "x"}]}})


def test_custom_space_choices_validated():
    small = build_search_space(backbones=("resnet18",), pretrained=("none",), strategies=("frozen",))
    cfg = FinetuneConfig.from_configspace(small.get_default_configuration())
    assert (cfg.backbone, cfg.pretrained, cfg.strategy) == ("resnet18", "none", "frozen")
    with pytest.raises(ConfigError) as info:
        build_search_space(backbones=("nope",))
    assert info.value.field == "backbone"
    with pytest.raises(ConfigError) as info:
        build_search_space(strategies=("partial",))
    assert info.value.field == "strategy"
    with pytest.raises(ConfigError):
        build_search_space(backbones=())
    with pytest.raises(ConfigError) as info:
        FinetuneConfig(backbone="alexnet").to_configuration(small)
    assert info.value.field == "backbone"
