"""Request and response bodies of the REST API (pydantic v2; they are the OpenAPI schema at ``/docs``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from metafeatures.summary import DatasetSummary
from portfolio.recommender import EVIDENCE_HELP, MAX_TIME_BUDGET_S, EvidenceName, PolicyName, Recommendation

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobNeeds = Literal["any", "cpu", "cuda"]
_NEEDS_DOC = "the device the job must run on: `cuda` (a GPU worker), `cpu` (a CPU worker) or `any`"
_PRIORITY_DOC = "workers take higher priorities first, then older jobs"
MAX_OFFSET = 1_000_000_000  # list pages: far below the 64-bit integers SQLite and PostgreSQL can bind


def _refuse_surrogates(value: Any, depth: int = 0) -> None:
    """Raise on a string (anywhere inside ``value``) holding a lone surrogate: it is not Unicode, and paths,
    databases and JSON encoders fail on it far from the request."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("strings must be valid Unicode (a lone surrogate such as \\ud800 is not)") from None
    elif depth < 64 and isinstance(value, dict):
        for k, v in value.items():
            _refuse_surrogates(k, depth + 1)
            _refuse_surrogates(v, depth + 1)
    elif depth < 64 and isinstance(value, (list, tuple)):
        for v in value:
            _refuse_surrogates(v, depth + 1)


class _In(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored, and strings
    that are not valid Unicode."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        """Every string of the body must encode as UTF-8."""
        _refuse_surrogates(data)
        return data


class DatasetRegister(_In):
    """Register a dataset already on the server: a path relative to the data root (or absolute inside it)."""

    path: str = Field(min_length=1, max_length=4096, examples=["demo/digits-8px"])
    name: str | None = Field(default=None, min_length=1, max_length=200)


class DatasetOut(BaseModel):
    """A registered dataset with its summary and validation report (``summary.skipped_files``)."""

    id: str
    name: str
    source: Literal["path", "upload"]
    created_at: dt.datetime
    summary: DatasetSummary


class DatasetList(BaseModel):
    """Registered datasets, newest first."""

    items: list[DatasetOut]
    count: int


class RecommendationRequest(_In):
    """Recommend for a registered dataset, for the user's time budget and limits."""

    dataset_id: str = Field(min_length=1, max_length=64)
    matcher: str | None = Field(default=None, max_length=40, description="default: the service's default matcher")
    policy: PolicyName | None = Field(default=None, description="selection policy; default: the portfolio's "
                                                                "calibrated one")
    time_budget_s: float | None = Field(default=None, gt=0, le=MAX_TIME_BUDGET_S, allow_inf_nan=False,
                                        description="rank candidates by ALC at this T (s); a job launched from "
                                                    "the recommendation runs this long by default")
    max_params: int | None = Field(default=None, ge=1, le=10**12, description="drop bigger candidates")
    max_flops: int | None = Field(default=None, ge=1, le=10**16, description="drop candidates with more FLOPs/image")
    max_latency_ms: float | None = Field(default=None, gt=0, le=1e6, allow_inf_nan=False,
                                         description="drop slower candidates (ms per image on the device the "
                                                     "portfolio's costs were measured on; see candidates[].cost)")
    top_k: int = Field(default=5, ge=1, le=100)
    reduced: bool = Field(default=False, description="legacy: the same as policy=reduced")
    evidence: EvidenceName = Field(default="fingerprints", description=EVIDENCE_HELP)

    def selection(self) -> dict[str, Any]:
        """The fields the selection layer takes (portfolio.recommender.SelectionRequest)."""
        return self.model_dump(exclude={"dataset_id", "matcher"})


class RecommendationOut(Recommendation):
    """The recommended configuration (the top candidate) and why: the known datasets the new one resembles, the
    ranked candidates with predicted ALC and cost, how novel the dataset looks, and whether the fallback was used."""

    id: str
    dataset_id: str | None
    n_images: int
    elapsed_ms: float


class JobCreate(_In):
    """Fine-tune on a registered dataset: either a stored recommendation or an explicit configuration."""

    dataset_id: str = Field(min_length=1, max_length=64)
    recommendation_id: str | None = Field(default=None, min_length=1, max_length=64)
    configuration: dict[str, Any] | None = None
    budget_s: float | None = Field(default=None, gt=0, le=MAX_TIME_BUDGET_S, allow_inf_nan=False,
                                   description="wall-clock budget of the run in seconds; default: the "
                                               "recommendation's time_budget_s when its request named one")
    needs: JobNeeds = Field(default="any", description=_NEEDS_DOC)
    priority: int = Field(default=0, ge=-100, le=100, description=_PRIORITY_DOC)

    @model_validator(mode="after")
    def _one_source(self) -> JobCreate:
        """Exactly one of recommendation_id and configuration."""
        if (self.recommendation_id is None) == (self.configuration is None):
            raise ValueError("give exactly one of recommendation_id and configuration")
        return self


class CurvePointOut(BaseModel):
    """One anytime prediction: seconds since start, NAUC (2·AUC−1) and accuracy on the test split."""

    t: float
    nauc: float
    accuracy: float
    step: int
    epoch: float


class JobOut(BaseModel):
    """A job's state; ``learning_curve`` grows while it runs, ``alc`` is set when it succeeds."""

    id: str
    kind: str = Field(description="finetune | rebuild | portfolio_update")
    needs: JobNeeds
    priority: int
    status: JobStatus
    dataset_id: str | None
    recommendation_id: str | None
    params: dict[str, Any]
    progress: float
    learning_curve: list[CurvePointOut]
    alc: float | None
    error: str | None
    device: str | None
    worker_id: str | None
    attempts: int
    cancel_requested: bool
    result: dict[str, Any] | None
    history: list[dict[str, Any]]
    created_at: dt.datetime
    started_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    finished_at: dt.datetime | None


class JobList(BaseModel):
    """Jobs, newest first."""

    items: list[JobOut]
    count: int


class PortfolioOut(BaseModel):
    """The served portfolio: version, entries (one per known dataset) and the reduced portfolio."""

    version: str
    directory: str
    matchers: list[str]
    fingerprint_spec: dict[str, Any]
    entries: list[dict[str, Any]]
    reduced_portfolio: list[str]
    provenance: dict[str, Any]


class ReloadRequest(_In):
    """Load a portfolio directory (inside the data root, or the configured one when omitted)."""

    path: str | None = Field(default=None, min_length=1, max_length=4096)


class RebuildRequest(_In):
    """Start the offline rebuild on a collection inside the data root; it runs as a job on a worker."""

    collection_path: str = Field(min_length=1, max_length=4096)
    datasets: list[str] | None = Field(default=None, min_length=2)
    scenario: dict[str, Any] = Field(default_factory=dict, description="SearchScenario fields (n_iterations, …)")
    n_workers: int = Field(default=1, ge=1, le=16)
    ray: bool = Field(default=False, description="run BOHB searches and matrix cells as Ray tasks (a local Ray with "
                                                 "n_workers CPUs, or the worker's METAREC_RAY_ADDRESS cluster)")
    fingerprint_backbone: Literal["mobilenet_v2", "resnet18"] = "mobilenet_v2"
    fingerprint_weights: Literal["imagenet", "random"] = "imagenet"
    fingerprint_resolution: int = Field(default=64, ge=16, le=512)
    n_samples: int = Field(default=256, ge=8, le=100_000)
    base_config: dict[str, Any] = Field(default_factory=dict, description="fixed FinetuneConfig fields")
    matchers: list[Literal["kmeans", "mlp", "moments"]] = Field(default=["kmeans", "mlp", "moments"], min_length=1)
    needs: JobNeeds = Field(default="any", description=_NEEDS_DOC)
    priority: int = Field(default=0, ge=-100, le=100, description=_PRIORITY_DOC)


class UpdateRequest(_In):
    """A new portfolio version from the served one plus what the jobs observed: every registered dataset with job
    observations the portfolio does not know becomes a known dataset (or only ``dataset_ids``)."""

    dataset_ids: list[str] | None = Field(default=None, min_length=1, max_length=1000,
                                          description="default: every registered dataset with job observations")
    collection_path: str | None = Field(default=None, min_length=1, max_length=4096,
                                        description="folder under the data root holding the portfolio's known "
                                                    "datasets; default: the demo datasets, regenerated")
    include_default: bool = Field(default=True, description="keep the seed-000 default in the candidate pool")
    needs: JobNeeds = Field(default="any", description=_NEEDS_DOC)
    priority: int = Field(default=0, ge=-100, le=100, description=_PRIORITY_DOC)

    @model_validator(mode="after")
    def _bounded_ids(self) -> UpdateRequest:
        """Every id is a bounded string."""
        if any(not 1 <= len(i) <= 64 for i in self.dataset_ids or ()):
            raise ValueError("dataset_ids: every id has 1 to 64 characters")
        return self
