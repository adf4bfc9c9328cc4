"""All service settings in one pydantic-settings class, read from ``METAREC_*`` environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_USER_KEY = "metarec-dev-user-key"
DEV_ADMIN_KEY = "metarec-dev-admin-key"


class Settings(BaseSettings):
    """Service configuration; development defaults run on loopback with SQLite and the shipped portfolio."""

    model_config = SettingsConfigDict(env_prefix="METAREC_", extra="ignore", frozen=True)

    env: Literal["development", "production"] = "development"
    data_root: Path = Path("data/service")
    database_url: str = ""
    portfolio_dir: Path | None = None
    observation_store: Path | None = None
    api_key: str = DEV_USER_KEY
    admin_api_key: str = DEV_ADMIN_KEY
    max_upload_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    max_extract_files: int = Field(default=100_000, gt=0)
    max_extract_bytes: int = Field(default=2 * 1024 * 1024 * 1024, gt=0)
    max_recommend_images: int = Field(default=512, gt=0)
    max_json_bytes: int = Field(default=1024 * 1024, gt=0)
    max_header_bytes: int = Field(default=64 * 1024, ge=4096)
    max_image_pixels: int = Field(default=4096 * 4096, gt=0)
    max_request_pixels: int = Field(default=64 * 1024 * 1024, gt=0)
    db_wait_s: float = Field(default=30.0, ge=0)
    devices: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["auto"])
    fingerprint_threads: int = Field(default=2, gt=0)
    fingerprint_samples: int = Field(default=256, gt=0)
    default_matcher: str = "mlp"
    heartbeat_s: float = Field(default=5.0, gt=0)
    stale_after_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    poll_s: float = Field(default=1.0, gt=0)
    max_budget_s: float = Field(default=24 * 3600.0, gt=0)
    ray_address: str | None = Field(default=None, min_length=1, max_length=512,
                                    description="Ray cluster that rebuild jobs with ray=true join (default: a local "
                                                "Ray on the worker's machine)")

    @field_validator("ray_address", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``METAREC_RAY_ADDRESS=`` (empty) means no cluster, as if it were unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("devices", mode="before")
    @classmethod
    def _split_devices(cls, value: object) -> object:
        """Accept ``cpu,cuda:0`` as well as a JSON list."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_dev_keys_in_production(self) -> Settings:
        """Production must set its own keys: the development defaults are public."""
        if self.env == "production":
            for name, value, dev in (("METAREC_API_KEY", self.api_key, DEV_USER_KEY),
                                     ("METAREC_ADMIN_API_KEY", self.admin_api_key, DEV_ADMIN_KEY)):
                if value == dev or len(value) < 16:
                    raise ValueError(f"{name} must be set to a secret of at least 16 characters in production "
                                     "(the development default is refused)")
        if self.api_key == self.admin_api_key:
            raise ValueError("METAREC_API_KEY and METAREC_ADMIN_API_KEY must differ")
        return self

    @property
    def root(self) -> Path:
        """The data root, absolute and resolved (every served path must resolve inside it)."""
        self.data_root.mkdir(parents=True, exist_ok=True)
        return self.data_root.resolve()

    @property
    def db_url(self) -> str:
        """The database URL; default is a SQLite file under the data root."""
        return self.database_url or f"sqlite:///{self.root / 'metarec.sqlite'}"

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded archives are extracted (one folder per dataset id)."""
        return self.root / "uploads"

    @property
    def jobs_dir(self) -> Path:
        """Where job outputs (metrics, checkpoints, curves, rebuilt portfolios) are written."""
        return self.root / "jobs"

    @property
    def store_path(self) -> Path:
        """The service's observation store: every finished job appends a row; portfolio updates read it. Default:
        ``observations.sqlite`` under the data root (a packaged portfolio's own store is read-only)."""
        return self.observation_store or self.root / "observations.sqlite"

    @property
    def fingerprints_dir(self) -> Path:
        """Fingerprint files of datasets jobs ran on, keyed by content hash and fingerprint spec."""
        return self.root / "fingerprints"

    def resolved_portfolio_dir(self) -> Path:
        """The portfolio directory to serve: the setting, or the shipped default."""
        from portfolio.defaults import default_portfolio_dir

        return self.portfolio_dir or default_portfolio_dir()
