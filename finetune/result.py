"""The outcome of one fine-tuning run: learning curve, ALC, timings; saved as ``metrics.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from metafeatures.errors import ArtifactError

RESULT_FORMAT_VERSION = 1
METRICS_NAME = "metrics.json"


class CurvePoint(BaseModel):
    """One anytime prediction of the test split: when (seconds since start) and how good."""

    model_config = ConfigDict(frozen=True)

    t: float
    nauc: float
    accuracy: float
    step: int
    epoch: float


class FinetuneResult(BaseModel):
    """Everything a user or the offline search needs to know about a fine-tuning run."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = RESULT_FORMAT_VERSION
    status: Literal["completed", "cancelled", "diverged"]
    reason: str = ""
    dataset: str
    config: dict[str, Any]
    classes: list[str]
    input_size: tuple[int, int]
    n_train: int
    n_test: int
    split: str
    learning_curve: list[CurvePoint]
    alc: float
    final_nauc: float
    final_accuracy: float
    return_time: float
    time_budget: float
    t0: float
    budget_s: float | None
    budget_epochs: float | None
    wall_time: float
    setup_time: float
    steps: int
    epochs: float
    train_images_per_s: float
    device: str
    amp: bool
    peak_memory_mb: float
    checkpoint: str | None = None
    provenance: dict[str, Any] = {}

    def save(self, out_dir: Path) -> Path:
        """Write ``out_dir/metrics.json`` atomically."""
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / METRICS_NAME
        tmp = path.with_name(path.name + ".partial")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> FinetuneResult:
        """Read ``metrics.json`` (or a run directory holding it); refuse another format version."""
        path = path / METRICS_NAME if path.is_dir() else path
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{path}: cannot read fine-tune metrics ({exc})") from exc
        if data.get("format_version") != RESULT_FORMAT_VERSION:
            raise ArtifactError(f"{path}: result format version {data.get('format_version')!r} is not supported "
                                f"(this metarec reads {RESULT_FORMAT_VERSION})")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ArtifactError(f"{path}: malformed fine-tune metrics: {exc.errors()[0]['msg']}") from exc
