"""Searched networks as zoo entries ``nas:<name>``: a folder holding ``entry.json`` and ``model.pt``.

``entry.json`` carries the format version, the search space, the genotype, parameters / FLOPs / latency,
the latency table with its device description, the search arguments and statistics, the dataset's
name and content hash, and versions; ``model.pt`` is a metarec checkpoint of the merged network with
the search's classifier (so ``pretrained=<entry>/model.pt`` starts a fine-tune from the searched weights).
Entries live in ``$METAREC_NAS_DIR`` (default ``$XDG_DATA_HOME/metarec/nas``, i.e. ``~/.local/share``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from finetune.nas.names import NAS_PREFIX, is_valid_name
from finetune.nas.network import DerivedNet
from finetune.nas.space import Genotype, SearchSpace
from metafeatures.errors import ArtifactError, ConfigError, OutputExistsError
from metafeatures.paths import file_sha256

ENTRY_FORMAT_VERSION = 1
ENTRY_KIND = "metarec-nas-entry"
NAS_DIR_ENV = "METAREC_NAS_DIR"
ENTRY_FILE, WEIGHTS_FILE = "entry.json", "model.pt"
REQUIRED = ("format_version", "kind", "name", "space", "genotype", "channels", "input_size", "params", "flops",
            "latency", "latency_table", "search", "dataset", "weights", "provenance")


def nas_dir() -> Path:
    """Where ``nas:<name>`` entries live: ``$METAREC_NAS_DIR``, else ``$XDG_DATA_HOME/metarec/nas``."""
    value = os.environ.get(NAS_DIR_ENV)
    if value:
        return Path(value)
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "metarec" / "nas"


def check_name(name: object) -> str:
    """A valid entry name (without the ``nas:`` prefix), else ConfigError."""
    if not is_valid_name(name):
        raise ConfigError("name", name, "entry names are 1-64 characters of a-z, 0-9, '_', '.', '-' "
                                        "starting with a letter or digit")
    return str(name)


@dataclass(frozen=True)
class SavedEntry:
    """A loaded ``entry.json``: the architecture, where its weights are, and everything recorded with it."""

    path: Path
    name: str
    space: SearchSpace
    genotype: Genotype
    meta: dict[str, Any]

    @property
    def zoo_name(self) -> str:
        """The backbone name in the zoo and in FinetuneConfig: ``nas:<name>``."""
        return NAS_PREFIX + self.name

    @property
    def weights_path(self) -> Path:
        """The metarec checkpoint with the searched weights."""
        return self.path / WEIGHTS_FILE

    def build(self) -> DerivedNet:
        """The merged network, untrained (seeded by the caller's RNG)."""
        return DerivedNet(self.space, self.genotype, merged=True)


def write_entry(out: Path, result: Any, name: str) -> Path:
    """Write ``entry.json`` and ``model.pt`` of a :class:`finetune.nas.search.SearchResult` to ``out``."""
    from finetune.checkpoint import save_checkpoint
    from finetune.config import FinetuneConfig
    from finetune.model import FinetuneModel
    from metarec import __version__

    name = check_name(name)
    size = tuple(result.dataset["input_size"])
    model = FinetuneModel(NAS_PREFIX + name, result.model.backbone, result.model.head, size,  # type: ignore[arg-type]
                          pretrained=f"nas-search:{result.dataset['name']}")
    config = FinetuneConfig(backbone=NAS_PREFIX + name, pretrained="none", input_size=size[0], head_layers=1,
                            dropout=0.0, seed=result.options.seed)
    weights = save_checkpoint(out / WEIGHTS_FILE, model, config.to_dict(), result.classes,
                              extra={"nas_entry": name, "test_accuracy": result.stats["test_accuracy"]})
    stats = result.stats
    meta = {
        "format_version": ENTRY_FORMAT_VERSION, "kind": ENTRY_KIND, "name": name,
        "space": result.space.to_dict(), "genotype": result.genotype.to_dict(),
        "channels": result.space.out_channels, "input_size": list(size),
        "params": stats["params"], "flops": stats["flops"],
        "latency": {"batch_size": 1, "measured_ms": stats["measured_ms"], "predicted_ms": stats["predicted_ms"],
                    "device": result.table.device},
        "latency_table": result.table.to_dict(), "search": {"options": result.options.to_dict(), "stats": stats,
                                                            "alphas": result.alphas},
        "dataset": result.dataset, "weights": {"file": WEIGHTS_FILE, "sha256": file_sha256(weights)},
        "provenance": {"metarec_version": __version__, "torch_version": str(torch.__version__),
                       "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
    }
    (out / ENTRY_FILE).write_text(json.dumps(meta, indent=1))
    return out


def install_entry(src: Path, name: str, overwrite: bool = False) -> Path:
    """Copy an entry folder written by :func:`write_entry` to ``nas_dir()/<name>`` (checked first; an
    existing entry of that name is kept unless ``overwrite``); returns the installed folder."""
    load_entry(src, check_weights=True)
    dest = nas_dir() / check_name(name)
    if dest.exists() and not overwrite:
        raise OutputExistsError(dest, f"a searched entry named {name!r} exists; pass --overwrite or another --name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        tmp.mkdir()
        for file in (ENTRY_FILE, WEIGHTS_FILE):
            shutil.copy2(src / file, tmp / file)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def load_entry(path: Path, check_weights: bool = False) -> SavedEntry:
    """Read and check an entry folder; another format version, missing fields, an architecture that does not
    fit its space or (with ``check_weights``) a weights file whose sha256 differs raise ArtifactError."""
    file = Path(path) / ENTRY_FILE
    try:
        meta = json.loads(file.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{file}: no such searched entry file") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{file}: not a readable searched entry ({type(exc).__name__})") from exc
    if not isinstance(meta, dict) or meta.get("kind") != ENTRY_KIND:
        raise ArtifactError(f"{file}: not a metarec searched entry (kind {ENTRY_KIND!r} expected)")
    if meta.get("format_version") != ENTRY_FORMAT_VERSION:
        raise ArtifactError(f"{file}: searched entry format version {meta.get('format_version')!r} is not "
                            f"supported (this metarec reads version {ENTRY_FORMAT_VERSION})")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ArtifactError(f"{file}: searched entry lacks {', '.join(missing)}")
    try:
        space = SearchSpace.from_dict(meta["space"])
        genotype = Genotype.from_dict(meta["genotype"]).validate(space)
        name = check_name(meta["name"])
    except ConfigError as exc:
        raise ArtifactError(f"{file}: invalid searched entry: {exc}") from exc
    if meta["channels"] != space.out_channels:
        raise ArtifactError(f"{file}: declares {meta['channels']} channels, its architecture has {space.out_channels}")
    if check_weights:
        weights = Path(path) / WEIGHTS_FILE
        if not weights.is_file():
            raise ArtifactError(f"{weights}: the entry's weights file is missing")
        if file_sha256(weights) != meta["weights"].get("sha256"):
            raise ArtifactError(f"{weights}: sha256 differs from the one recorded in {file}")
    return SavedEntry(path=Path(path), name=name, space=space, genotype=genotype, meta=meta)


def find_entry(name: str) -> SavedEntry:
    """The installed entry ``name`` (with or without ``nas:``); an unknown name lists the installed ones."""
    bare = name[len(NAS_PREFIX):] if name.startswith(NAS_PREFIX) else name
    folder = nas_dir() / check_name(bare)
    if not (folder / ENTRY_FILE).is_file():
        known = ", ".join(e.zoo_name for e in list_entries()) or "none"
        raise ConfigError("backbone", NAS_PREFIX + bare,
                          f"no searched entry of that name in {nas_dir()} ({NAS_DIR_ENV}); installed: {known}; "
                          "make one with `metarec nas search`")
    return _cached_entry(str(folder), (folder / ENTRY_FILE).stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _cached_entry(folder: str, mtime_ns: int) -> SavedEntry:
    """An entry read once per file version (zoo lookups happen many times per run)."""
    return load_entry(Path(folder))


def list_entries() -> list[SavedEntry]:
    """Installed entries, by name; folders that are not valid entries are left out."""
    root = nas_dir()
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and not folder.name.startswith(".") and (folder / ENTRY_FILE).is_file():
            try:
                out.append(load_entry(folder))
            except ArtifactError:
                continue
    return out


def zoo_entry(name: str) -> Any:
    """The :class:`finetune.zoo.ZooEntry` of the installed entry ``nas:<name>``."""
    from finetune.zoo import ZooEntry

    entry = find_entry(name)
    return ZooEntry(name=entry.zoo_name, channels=entry.space.out_channels, weights=None, min_input_size=8,
                    build_full=entry.build, to_features=lambda m: m,
                    block_names=DerivedNet.block_names_of(entry.space),
                    description=f"searched on {entry.meta['dataset'].get('name', '?')} (seed 004)")
