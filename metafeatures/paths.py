"""Where metarec keeps caches and looks for weight files: read from the environment in one place."""

from __future__ import annotations

import os
from pathlib import Path


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
