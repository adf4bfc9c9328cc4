"""One typed, frozen fine-tuning configuration shared by the trainer, the offline search and the service."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from finetune.nas.names import is_searched_name
from metafeatures.errors import ConfigError

if TYPE_CHECKING:
    from ConfigSpace import Configuration, ConfigurationSpace

    from finetune.heads import HeadSpec

CONFIG_FORMAT_VERSION = 1

# Backbone names of the model zoo; used only when ``finetune.zoo`` cannot be imported.
ZOO_NAMES: tuple[str, ...] = (
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_mini",
    "efficientnet_lite0",
    "vgg11_bn",
    "googlenet",
    "alexnet",
    "lenet",
)

# Seed 001 §6.2: SGD always means Nesterov momentum 0.9 and weight decay 1e-6 (not free hyperparameters).
SGD_MOMENTUM = 0.9
SGD_NESTEROV = True
SGD_WEIGHT_DECAY = 1e-6

PRETRAINED_IMAGENET = "imagenet"
PRETRAINED_NONE = "none"

# Video heads: per-frame backbone + temporal 1-D convolution (seed 000 §II.B, its final model and the default
# for video), or per-frame predictions averaged over frames (seed 001 eq. 2). Images ignore the field.
VIDEO_HEADS: tuple[str, ...] = ("temporal_conv", "average")
DEFAULT_VIDEO_HEAD = "temporal_conv"

# Fields the ConfigSpace search space of ``finetune.space`` holds (``last_k`` only when strategy == "last_k").
CONFIGSPACE_FIELDS: tuple[str, ...] = (
    "backbone",
    "pretrained",
    "optimizer",
    "strategy",
    "batch_size",
    "lr",
    "dropout",
    "head_layers",
    "last_k",
)


def known_backbones() -> tuple[str, ...]:
    """Backbone names a config may name: the zoo's own list when importable, else ``ZOO_NAMES``."""
    try:
        from finetune.zoo import list_models
    except ImportError:
        return ZOO_NAMES
    return tuple(list_models())


def _plain(value: object) -> object:
    """Turn numpy scalars (ConfigSpace and hpbandster hand these over) into Python builtins."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _config_error(exc: ValidationError) -> ConfigError:
    """Convert pydantic's first validation error into a ConfigError naming the field at fault."""
    err = exc.errors()[0]
    loc = err.get("loc") or ()
    field = str(loc[0]) if loc else "<config>"
    problem = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        problem = "unknown field (FinetuneConfig fields: " + ", ".join(FinetuneConfig.model_fields) + ")"
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, ConfigError):
        problem = ctx_error.problem
    return ConfigError(field, err.get("input"), problem)


# Upper bounds: a configuration comes from users and the service; without them one request could make a worker
# allocate without limit (a 1e12-wide head, a 1e12-pixel input).
MAX_LAST_K = 64  # more blocks than any zoo backbone has
MAX_HEAD_WIDTH = 8192
MAX_EDGE = 1024  # input_size and max_edge, in pixels


class FinetuneConfig(BaseModel):
    """Everything that decides one fine-tuning run: backbone, weights, strategy, optimiser, head, input size."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    SGD_MOMENTUM: ClassVar[float] = SGD_MOMENTUM
    SGD_NESTEROV: ClassVar[bool] = SGD_NESTEROV
    SGD_WEIGHT_DECAY: ClassVar[float] = SGD_WEIGHT_DECAY

    backbone: str = "mobilenet_v2"
    pretrained: str = PRETRAINED_IMAGENET
    strategy: Literal["frozen", "last_k", "full"] = "full"
    last_k: Annotated[int, Field(ge=1, le=MAX_LAST_K)] = 1
    optimizer: Literal["adam", "sgd"] = "adam"
    batch_size: Annotated[int, Field(ge=1, le=1024)] = 32
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    head_layers: Annotated[int, Field(ge=1, le=3)] = 2
    head_width: Annotated[int, Field(ge=8, le=MAX_HEAD_WIDTH)] = 512
    head_conv1x1: bool = False
    input_size: Literal["adaptive"] | Annotated[int, Field(ge=8, le=MAX_EDGE)] = "adaptive"
    max_edge: Annotated[int, Field(ge=8, le=MAX_EDGE)] = 128
    seed: Annotated[int, Field(ge=0, lt=2**32)] = 0
    video_head: Literal["temporal_conv", "average"] | None = None
    format_version: int = CONFIG_FORMAT_VERSION

    def __init__(self, **data: Any) -> None:
        """Validate like pydantic but raise ConfigError (naming the field) instead of ValidationError."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _config_error(exc) from exc

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> FinetuneConfig:
        """pydantic's model_validate, raising ConfigError so every entry point fails the same way."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise _config_error(exc) from exc

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, *args: Any, **kwargs: Any) -> FinetuneConfig:
        """pydantic's model_validate_json, raising ConfigError so every entry point fails the same way."""
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as exc:
            raise _config_error(exc) from exc

    @model_validator(mode="before")
    @classmethod
    def _numpy_to_builtins(cls, data: Any) -> Any:
        """Accept numpy scalars anywhere (search tools produce them) by casting them to builtins first."""
        if isinstance(data, Mapping):
            return {key: _plain(value) for key, value in data.items()}
        return data

    @field_validator("backbone")
    @classmethod
    def _check_backbone(cls, value: str) -> str:
        """Refuse a backbone the model zoo does not build (``nas:<name>`` is resolved when the model is built)."""
        names = known_backbones()
        if value not in names and not is_searched_name(value):
            raise ValueError(f"unknown backbone; known: {', '.join(names)} or nas:<searched entry>")
        return value

    @field_validator("pretrained")
    @classmethod
    def _check_pretrained(cls, value: str) -> str:
        """Require 'imagenet', 'none' or a non-empty checkpoint path (existence is checked when loading)."""
        if not value.strip() or value != value.strip() or "\x00" in value:
            raise ValueError("expected 'imagenet', 'none' or a path to a metarec checkpoint")
        return value

    @field_validator("format_version")
    @classmethod
    def _check_format_version(cls, value: int) -> int:
        """Refuse configs written by another config format than this metarec reads."""
        if value != CONFIG_FORMAT_VERSION:
            raise ValueError(f"unsupported config format version (this metarec reads {CONFIG_FORMAT_VERSION})")
        return value

    # ---- derived, read-only settings -------------------------------------------------------------

    @property
    def pretrained_kind(self) -> Literal["imagenet", "none", "checkpoint"]:
        """What ``pretrained`` means: ImageNet weights, random initialisation, or a metarec checkpoint path."""
        if self.pretrained == PRETRAINED_IMAGENET:
            return "imagenet"
        if self.pretrained == PRETRAINED_NONE:
            return "none"
        return "checkpoint"

    @property
    def momentum(self) -> float:
        """Optimiser momentum: 0.9 (Nesterov) for SGD, unused (0.0) for Adam."""
        return SGD_MOMENTUM if self.optimizer == "sgd" else 0.0

    @property
    def nesterov(self) -> bool:
        """Whether SGD uses Nesterov momentum (always, for SGD)."""
        return self.optimizer == "sgd" and SGD_NESTEROV

    @property
    def weight_decay(self) -> float:
        """Weight decay: 1e-6 for SGD (seed 001 §6.2), none for Adam."""
        return SGD_WEIGHT_DECAY if self.optimizer == "sgd" else 0.0

    def optimizer_kwargs(self) -> dict[str, float | bool]:
        """Keyword arguments for ``torch.optim.Adam``/``torch.optim.SGD`` so the trainer need not re-derive them."""
        if self.optimizer == "sgd":
            return {"lr": self.lr, "momentum": SGD_MOMENTUM, "nesterov": SGD_NESTEROV, "weight_decay": SGD_WEIGHT_DECAY}
        return {"lr": self.lr}

    @property
    def video_head_or_default(self) -> str:
        """The video head a video dataset gets: ``video_head``, or seed 000's temporal convolution when unset."""
        return self.video_head or DEFAULT_VIDEO_HEAD

    def head_spec(self) -> HeadSpec:
        """The classification head's shape (seed 000: optional 1x1 conv, pooling, 1-3 FC layers)."""
        from finetune.heads import HeadSpec

        return HeadSpec(conv1x1=self.head_conv1x1, layers=self.head_layers, width=self.head_width,
                        dropout=self.dropout)

    def target_size(self, mean_height: float, mean_width: float) -> tuple[int, int]:
        """Input (height, width): seed 000's adaptive size (mean size, longer edge ≤ max_edge) or the fixed square."""
        if self.input_size == "adaptive":
            from metafeatures.images import adaptive_size

            return adaptive_size(mean_height, mean_width, self.max_edge)
        return self.input_size, self.input_size

    # ---- serialisation --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready builtins (the format ``from_dict`` reads back); an unset ``video_head`` is
        left out, so configs without one keep the exact JSON and digest they had before video support."""
        data = self.model_dump(mode="json")
        if data.get("video_head") is None:
            data.pop("video_head", None)
        return data

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), so equal configs give equal text and equal digests."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def digest(self) -> str:
        """Short sha256 of the canonical JSON: a stable key for caches and run folders."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()[:16]

    def replace(self, **changes: Any) -> FinetuneConfig:
        """A copy with some fields changed, validated again (pydantic's model_copy would skip validation)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FinetuneConfig:
        """Build from a mapping of field values; unknown keys and bad values raise ConfigError."""
        if not isinstance(d, Mapping):
            raise ConfigError("<config>", d, "expected a mapping of FinetuneConfig fields")
        bad_keys = [key for key in d if not isinstance(key, str)]
        if bad_keys:
            raise ConfigError(str(bad_keys[0]), d[bad_keys[0]], "field names must be strings")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str | bytes) -> FinetuneConfig:
        """Parse ``to_json`` output (or any JSON object of fields); malformed JSON raises ConfigError."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
            raise ConfigError("<json>", text, f"not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    # ---- ConfigSpace bridge ---------------------------------------------------------------------

    @classmethod
    def from_configspace(
        cls, config: Configuration | Mapping[str, Any], base: FinetuneConfig | Mapping[str, Any] | None = None
    ) -> FinetuneConfig:
        """Build from a sampled ConfigSpace configuration or hpbandster's plain dict.

        Numpy scalars are cast to builtins; fields the configuration lacks (inactive ``last_k``, and the
        fields the space does not search, such as ``head_width`` or ``seed``) come from ``base``
        (default: the field defaults). An inactive ``last_k`` is dropped so equal choices give equal configs.
        """
        if not isinstance(config, Mapping):
            raise ConfigError("<config>", config, "expected a ConfigSpace Configuration or a mapping")
        values: dict[str, Any] = {}
        if base is not None:
            values.update(base.to_dict() if isinstance(base, FinetuneConfig) else dict(base))
        values.update({str(key): _plain(value) for key, value in dict(config).items()})
        if values.get("strategy", "full") != "last_k":
            values.pop("last_k", None)
        return cls.from_dict(values)

    def to_configspace_dict(self) -> dict[str, Any]:
        """The values of this config for ``finetune.space``'s hyperparameters (``last_k`` only when active)."""
        data = self.to_dict()
        out = {name: data[name] for name in CONFIGSPACE_FIELDS}
        if self.strategy != "last_k":
            del out["last_k"]
        if self.video_head is not None:
            out["video_head"] = self.video_head
        return out

    def to_configuration(self, space: ConfigurationSpace) -> Configuration:
        """This config as a Configuration of ``space`` (e.g. to warm-start a search); ConfigError if illegal."""
        from ConfigSpace import Configuration

        names = set(space.keys())
        values = {key: value for key, value in self.to_configspace_dict().items() if key in names}
        if "video_head" in names:  # a video space: an unset head means the default one
            values.setdefault("video_head", self.video_head_or_default)
        for key in CONFIGSPACE_FIELDS:
            if key in names and key not in values and key != "last_k":
                raise ConfigError(key, None, "missing value for a hyperparameter of the space")
        for key, value in values.items():
            if not space[key].legal_value(value):
                raise ConfigError(key, value, "value not in the search space")
        try:
            return Configuration(space, values=values)
        except (ValueError, KeyError) as exc:
            raise ConfigError("<config>", values, f"not a configuration of the search space: {exc}") from exc
