"""Fine-tuned model checkpoints: one torch file of tensors and JSON-like values, read with weights_only=True."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from finetune.heads import HeadSpec, VideoSpec
from finetune.model import STRATEGIES, FinetuneModel, VideoFinetuneModel, build_model
from finetune.zoo import is_known, list_models
from metafeatures.errors import ArtifactError, ConfigError

CHECKPOINT_FORMAT_VERSION = 1

REQUIRED_KEYS: tuple[str, ...] = (
    "format_version", "zoo_name", "n_classes", "class_names", "head", "strategy", "last_k", "input_size",
    "pretrained", "config", "state_dict", "metarec_version", "torch_version", "created_at", "extra",
)


@dataclass
class Checkpoint:
    """A loaded checkpoint: what the model is (zoo name, classes, head, strategy, input size), its weights,
    the fine-tune config that produced it and provenance (versions, date, pretrained source)."""

    path: Path | None
    zoo_name: str
    n_classes: int
    class_names: list[str]
    head: HeadSpec
    strategy: str
    last_k: int | None
    input_size: tuple[int, int]
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    pretrained: str = "none"
    metarec_version: str = ""
    torch_version: str = ""
    created_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = CHECKPOINT_FORMAT_VERSION
    video: VideoSpec | None = None  # optional key: absent in image checkpoints


def _check_plain(value: object, where: str, tensors: bool) -> None:
    """Refuse anything torch.load(weights_only=True) or JSON could not carry (e.g. Paths, numpy arrays)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if tensors and isinstance(value, torch.Tensor):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]", tensors)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) and not (tensors and isinstance(key, int)):
                raise ValueError(f"{where}: key {key!r} is not a string")
            _check_plain(item, f"{where}[{key!r}]", tensors)
        return
    raise ValueError(f"{where}: {type(value).__name__} is not a plain value (str, number, bool, None, list, dict"
                     + (", tensor)" if tensors else ")"))


def _plain_config(config: object) -> dict[str, Any]:
    if hasattr(config, "to_dict") and callable(config.to_dict):
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a mapping (the fine-tune config as a plain dict), "
                         f"got {type(config).__name__}")
    _check_plain(config, "config", tensors=False)
    return dict(config)


def save_checkpoint(path: str | Path, model: FinetuneModel, config: Mapping[str, Any], class_names: list[str],
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` with its description, the fine-tune ``config`` (plain dict), class names and optional
    ``extra`` (plain values and tensors) to ``path`` atomically; returns the path."""
    from metarec import __version__

    path = Path(path)
    names = [str(n) for n in class_names]
    if not all(isinstance(n, str) for n in names) or len(names) != model.n_classes:
        raise ValueError(f"class_names must be {model.n_classes} strings (the model's classes), got {names!r}")
    extra = dict(extra or {})
    _check_plain(extra, "extra", tensors=True)
    payload: dict[str, Any] = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "zoo_name": model.zoo_name,
        "n_classes": model.n_classes,
        "class_names": names,
        "head": model.head_spec.to_dict(),
        "strategy": model.strategy,
        "last_k": model.last_k,
        "input_size": list(model.input_size),
        "pretrained": model.pretrained,
        "config": _plain_config(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metarec_version": __version__,
        "torch_version": str(torch.__version__),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "extra": extra,
    }
    if isinstance(model, VideoFinetuneModel):
        payload["video"] = model.video.to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``); a missing file, another format version, missing
    keys or ill-typed values raise ArtifactError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad or unsafe file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ArtifactError(f"{path}: not a readable metarec checkpoint ({type(exc).__name__}: {first[:200]})") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: not a metarec checkpoint (holds a {type(data).__name__}, not a dict)")
    if "format_version" not in data:
        raise ArtifactError(f"{path}: no format_version, not a metarec checkpoint")
    version = data["format_version"]
    if version != CHECKPOINT_FORMAT_VERSION or isinstance(version, bool):
        raise ArtifactError(f"{path}: checkpoint format version {version!r} is not supported "
                            f"(this metarec reads version {CHECKPOINT_FORMAT_VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ArtifactError(f"{path}: checkpoint lacks {', '.join(missing)}")

    def bad(key: str, why: str) -> ArtifactError:
        return ArtifactError(f"{path}: checkpoint field {key}={data.get(key)!r:.80}: {why}")

    if not is_known(data["zoo_name"]):
        raise bad("zoo_name", f"unknown zoo model; known: {', '.join(list_models())}")
    n = data["n_classes"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise bad("n_classes", "not an integer of at least 2")
    names = data["class_names"]
    if not isinstance(names, list) or len(names) != n or not all(isinstance(c, str) for c in names):
        raise bad("class_names", f"not a list of {n} strings")
    if not isinstance(data["head"], dict):
        raise bad("head", "not a dict")
    try:
        head = HeadSpec.from_dict(data["head"])
    except (ConfigError, TypeError) as exc:
        raise bad("head", str(exc)) from exc
    if data["strategy"] not in STRATEGIES:
        raise bad("strategy", f"not one of {', '.join(STRATEGIES)}")
    size = data["input_size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise bad("input_size", "not two positive integers")
    state = data["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise bad("state_dict", "not a dict of named tensors")
    if not isinstance(data["config"], dict) or not isinstance(data["extra"], dict):
        raise bad("config" if not isinstance(data["config"], dict) else "extra", "not a dict")
    last_k = data["last_k"]
    if last_k is not None and (isinstance(last_k, bool) or not isinstance(last_k, int)):
        raise bad("last_k", "not an integer or None")
    video = None
    if data.get("video") is not None:
        try:
            video = VideoSpec.from_dict(data["video"])
        except (ConfigError, TypeError, AttributeError) as exc:
            raise bad("video", str(exc)) from exc
    return Checkpoint(
        path=path, zoo_name=data["zoo_name"], n_classes=n, class_names=list(names), head=head,
        strategy=data["strategy"], last_k=last_k, input_size=(size[0], size[1]), config=dict(data["config"]),
        state_dict=dict(state), pretrained=str(data["pretrained"]), metarec_version=str(data["metarec_version"]),
        torch_version=str(data["torch_version"]), created_at=str(data["created_at"]), extra=dict(data["extra"]),
        format_version=version, video=video,
    )


def model_from_checkpoint(ckpt: Checkpoint) -> FinetuneModel:
    """Rebuild the exact model a checkpoint holds (architecture, strategy, weights), in eval mode."""
    where = ckpt.path or "checkpoint"
    try:
        model = build_model(ckpt.zoo_name, ckpt.n_classes, head=ckpt.head, strategy=ckpt.strategy,
                            last_k=ckpt.last_k or 1, input_size=ckpt.input_size, video=ckpt.video)
    except ConfigError as exc:
        raise ArtifactError(f"{where}: cannot rebuild its model: {exc}") from exc
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"{where}: weights do not fit {ckpt.zoo_name}: {str(exc).splitlines()[0]}") from exc
    model.pretrained = ckpt.pretrained
    return model.eval()
