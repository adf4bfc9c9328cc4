"""Where metarec keeps caches and looks for weight files: read from the environment in one place."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """Root of metarec's derived caches (decoded images, fingerprints): ``METAREC_CACHE_DIR``."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "metarec"
    return Path(os.environ.get("METAREC_CACHE_DIR", default))


def weights_dir() -> Path | None:
    """Extra folder searched for pretrained weight files before the torch hub cache: ``METAREC_WEIGHTS_DIR``."""
    value = os.environ.get("METAREC_WEIGHTS_DIR")
    return Path(value) if value else None


def hub_checkpoints_dir() -> Path:
    """torch hub's checkpoint cache, where torchvision's weight enums look for their files."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def file_sha256(path: Path) -> str:
    """sha256 of a file, streamed (weights identity, dataset content hashes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_savez(path: Path, **arrays: Any) -> Path:
    """``np.savez`` to a private temporary name, then rename: concurrent writers (BOHB workers sharing a
    cache) never see or clobber a half-written file."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial.npz")
    try:
        np.savez(tmp, **arrays)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
