"""The ConfigSpace search space of seed 001 §6.2 (what BOHB searches per dataset) and its versioned JSON form."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from ConfigSpace import (
    Categorical,
    ConfigurationSpace,
    EqualsCondition,
    Float,
    ForbiddenAndConjunction,
    ForbiddenEqualsClause,
    ForbiddenInClause,
    Integer,
)

from finetune.config import DEFAULT_VIDEO_HEAD, PRETRAINED_IMAGENET, VIDEO_HEADS, FinetuneConfig
from metafeatures.errors import ArtifactError, ConfigError

SPACE_FORMAT_VERSION = 1
SPACE_NAME = "metarec-finetune"

DEFAULT_BACKBONES: tuple[str, ...] = (
    "mobilenet_v2",
    "efficientnet_b0",
    "efficientnet_mini",
    "efficientnet_lite0",
    "resnet18",
    "mobilenet_v3_small",
)
DEFAULT_PRETRAINED: tuple[str, ...] = ("imagenet", "none")
STRATEGIES: tuple[str, ...] = get_args(FinetuneConfig.model_fields["strategy"].annotation)

BATCH_SIZES: tuple[int, ...] = (16, 32, 64, 128)
LR_RANGE: tuple[float, float] = (1e-5, 0.5)
DROPOUT_RANGE: tuple[float, float] = (0.01, 0.99)
HEAD_LAYERS: tuple[int, ...] = (1, 2, 3)
LAST_K_RANGE: tuple[int, int] = (1, 4)


def _choices(field: str, values: Sequence[str], preferred: str) -> tuple[list[str], str]:
    """Check a categorical's choices (non-empty, unique, each a valid config value) and pick its default."""
    if isinstance(values, str) or not values:
        raise ConfigError(field, values, "expected a non-empty sequence of choices")
    choices = [str(v) for v in values]
    if len(set(choices)) != len(choices):
        raise ConfigError(field, values, "choices must be unique")
    for choice in choices:
        FinetuneConfig.from_dict({field: choice})  # raises ConfigError naming the field
    return choices, preferred if preferred in choices else choices[0]


def imagenet_installed(backbone: str) -> bool:
    """True when the zoo backbone has ImageNet weights and their file is installed here
    (``METAREC_WEIGHTS_DIR`` or the torch hub cache; ``metarec weights install-offline|download``)."""
    from finetune.zoo import get_entry
    from metafeatures.backbones import find_weights_file
    from metafeatures.errors import WeightsNotFoundError

    entry = get_entry(backbone)
    if entry.weights is None:
        return False
    try:
        find_weights_file(entry.weights, backbone)
    except WeightsNotFoundError:
        return False
    return True


def build_search_space(
    backbones: Sequence[str] = DEFAULT_BACKBONES,
    pretrained: Sequence[str] = DEFAULT_PRETRAINED,
    strategies: Sequence[str] = STRATEGIES,
    seed: int = 0,
    modality: str = "image",
    gate_imagenet: bool = False,
) -> ConfigurationSpace:
    """Seed 001 §6.2's space: backbone × weights × optimiser × strategy, batch size, lr, dropout, head depth;
    for ``modality="video"`` also the video head (temporal convolution or frame averaging).

    Defaults equal ``FinetuneConfig()``'s values wherever the choices allow, so the space's default
    configuration is the config's default; ``last_k`` exists (and is active) only with strategy "last_k".
    With ``gate_imagenet`` ``pretrained=imagenet`` is forbidden for every backbone whose ImageNet file is not
    installed here, so a search never spends trials on configurations that cannot run; the offline search
    gates, while a portfolio records the ungated space (it must load on machines with other weights).
    """
    defaults = FinetuneConfig()
    backbone_choices, backbone_default = _choices("backbone", backbones, defaults.backbone)
    pretrained_choices, pretrained_default = _choices("pretrained", pretrained, defaults.pretrained)
    strategy_choices, strategy_default = _choices("strategy", strategies, defaults.strategy)
    no_imagenet: list[str] = []
    if gate_imagenet and PRETRAINED_IMAGENET in pretrained_choices:
        no_imagenet = [b for b in backbone_choices if not imagenet_installed(b)]
        backbone_default, pretrained_choices, pretrained_default = _gate(
            backbone_choices, backbone_default, pretrained_choices, pretrained_default, no_imagenet)
        no_imagenet = no_imagenet if PRETRAINED_IMAGENET in pretrained_choices else []

    space = ConfigurationSpace(name=SPACE_NAME, seed=seed)
    space.add(
        [
            Categorical("backbone", backbone_choices, default=backbone_default),
            Categorical("pretrained", pretrained_choices, default=pretrained_default),
            Categorical("optimizer", ["adam", "sgd"], default=defaults.optimizer),
            Categorical("strategy", strategy_choices, default=strategy_default),
            # hpbandster's BOHB refuses ordinal hyperparameters: batch size is a categorical of ints
            Categorical("batch_size", list(BATCH_SIZES), default=defaults.batch_size),
            Float("lr", LR_RANGE, log=True, default=defaults.lr),
            Float("dropout", DROPOUT_RANGE, default=defaults.dropout),
            Integer("head_layers", (min(HEAD_LAYERS), max(HEAD_LAYERS)), default=defaults.head_layers),
        ]
    )
    if modality not in ("image", "video"):
        raise ConfigError("modality", modality, "must be image or video")
    if modality == "video":
        space.add(Categorical("video_head", list(VIDEO_HEADS), default=DEFAULT_VIDEO_HEAD))
    for name in sorted(no_imagenet):  # sorted: the serialised form lists them so, and the DAG compares order
        space.add(ForbiddenAndConjunction(ForbiddenEqualsClause(space["backbone"], name),
                                          ForbiddenEqualsClause(space["pretrained"], PRETRAINED_IMAGENET)))
    if "last_k" in strategy_choices:
        last_k = Integer("last_k", LAST_K_RANGE, default=defaults.last_k)
        space.add(last_k)
        if len(strategy_choices) > 1:
            space.add(EqualsCondition(last_k, space["strategy"], "last_k"))
        _forbid_deep_last_k(space, backbone_choices)
    return space


def _gate(backbones: list[str], backbone_default: str, pretrained: list[str], pretrained_default: str,
          no_imagenet: list[str]) -> tuple[str, list[str], str]:
    """Defaults and pretrained choices once backbones without installed ImageNet files are known: drop
    ``imagenet`` when no backbone has it; keep the default configuration legal."""
    installed = [b for b in backbones if b not in no_imagenet]
    if not installed:
        if pretrained == [PRETRAINED_IMAGENET]:
            raise ConfigError("pretrained", pretrained, "no backbone of the space has its ImageNet weights installed "
                              f"({', '.join(backbones)}); add 'none' or install weights (metarec weights where)")
        pretrained = [p for p in pretrained if p != PRETRAINED_IMAGENET]
        return backbone_default, pretrained, pretrained_default if pretrained_default in pretrained else pretrained[0]
    if pretrained_default == PRETRAINED_IMAGENET and backbone_default in no_imagenet:
        if len(pretrained) > 1:
            pretrained_default = next(p for p in pretrained if p != PRETRAINED_IMAGENET)
        else:
            backbone_default = installed[0]
    return backbone_default, pretrained, pretrained_default


def _forbid_deep_last_k(space: ConfigurationSpace, backbones: Sequence[str]) -> None:
    """Backbones with fewer blocks than last_k's upper bound (lenet: 3) may not be sampled with a larger last_k."""
    from finetune.zoo import get_entry

    for name in backbones:
        too_deep = list(range(get_entry(name).n_blocks + 1, LAST_K_RANGE[1] + 1))
        if too_deep:
            space.add(ForbiddenAndConjunction(ForbiddenEqualsClause(space["backbone"], name),
                                              ForbiddenInClause(space["last_k"], too_deep)))


def _configspace_version() -> str:
    """The installed ConfigSpace distribution's version (the package's ``__version__`` lags behind)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ConfigSpace")
    except PackageNotFoundError:  # pragma: no cover - ConfigSpace imported above, so it is installed
        import ConfigSpace

        return str(ConfigSpace.__version__)


def space_to_dict(space: ConfigurationSpace) -> dict[str, Any]:
    """ConfigSpace's own serialised form of ``space`` (plain JSON types), tagged with our format version."""
    return {
        "space_format_version": SPACE_FORMAT_VERSION,
        "configspace_version": _configspace_version(),
        "space": json.loads(json.dumps(space.to_serialized_dict())),
    }


def space_from_dict(d: Mapping[str, Any], seed: int | None = None) -> ConfigurationSpace:
    """Read ``space_to_dict`` output back; ArtifactError on another format version or a malformed space."""
    if not isinstance(d, Mapping):
        raise ArtifactError(f"search space: expected a mapping, got {type(d).__name__}")
    version = d.get("space_format_version")
    if version != SPACE_FORMAT_VERSION:
        raise ArtifactError(
            f"search space: unsupported space_format_version {version!r} (this metarec reads {SPACE_FORMAT_VERSION})"
        )
    body = d.get("space")
    if not isinstance(body, Mapping):
        raise ArtifactError("search space: missing the 'space' entry")
    try:
        # from_serialized_dict pops keys from the dict it is given, so it gets a private copy.
        space = ConfigurationSpace.from_serialized_dict(copy.deepcopy(dict(body)))
    except (KeyError, ValueError, TypeError) as exc:
        raise ArtifactError(f"search space: malformed ConfigSpace serialisation ({exc})") from exc
    if seed is not None:
        space.seed(seed)
    return space
