"""``SearchScenario``: the frozen, validated settings of an offline BOHB search, saved beside its results.

The run directory is named by the scenario's hash, so the same settings find the same run (resume)
and different settings never mix their logs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from finetune.space import DEFAULT_BACKBONES, DEFAULT_PRETRAINED, build_search_space
from metafeatures.errors import ArtifactError, ConfigError

SCENARIO_FORMAT_VERSION = 1
SCENARIO_NAME = "scenario.json"
BUDGET_KINDS = ("epochs", "seconds")
SCORES = ("alc", "final_nauc")
MAX_RUNS, MAX_ITERATIONS, MAX_BUDGET = 100, 1000, 86400.0  # bounds: a scenario may come from a service request


@dataclass(frozen=True)
class SearchScenario:
    """How each dataset is searched: BOHB runs × iterations, budgets, eta, the score and the space's choices."""

    n_runs: int = 1
    n_iterations: int = 4
    min_budget: float = 1.0
    max_budget: float = 9.0
    eta: float = 3.0
    budget_kind: str = "epochs"
    score: str = "alc"
    backbones: tuple[str, ...] = DEFAULT_BACKBONES
    pretrained: tuple[str, ...] = DEFAULT_PRETRAINED
    seed: int = 0
    format_version: int = SCENARIO_FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "backbones", tuple(self.backbones))
        object.__setattr__(self, "pretrained", tuple(self.pretrained))
        checks = [
            ("n_runs", 1 <= self.n_runs <= MAX_RUNS, f"must be between 1 and {MAX_RUNS}"),
            ("n_iterations", 1 <= self.n_iterations <= MAX_ITERATIONS, f"must be between 1 and {MAX_ITERATIONS}"),
            ("min_budget", self.min_budget > 0, "must be positive"),
            ("max_budget", self.min_budget <= self.max_budget <= MAX_BUDGET,
             f"must be at least min_budget and at most {MAX_BUDGET:g}"),
            ("eta", self.eta > 1, "must be greater than 1"),
            ("budget_kind", self.budget_kind in BUDGET_KINDS, f"must be one of {BUDGET_KINDS}"),
            ("score", self.score in SCORES, f"must be one of {SCORES}"),
            ("backbones", len(self.backbones) >= 1, "needs at least one backbone"),
            ("seed", self.seed >= 0, "must be non-negative"),
            ("format_version", self.format_version == SCENARIO_FORMAT_VERSION,
             f"this metarec reads scenario format {SCENARIO_FORMAT_VERSION}"),
        ]
        for name, ok, problem in checks:
            if not ok:
                raise ConfigError(name, getattr(self, name), problem)
        build_search_space(self.backbones, self.pretrained)  # refuses unknown backbones/sources by field

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchScenario:
        """Rebuild and validate; an unknown key or another format version is refused."""
        if data.get("format_version") != SCENARIO_FORMAT_VERSION:
            raise ArtifactError(f"scenario format version {data.get('format_version')!r} is not supported "
                                f"(this metarec reads {SCENARIO_FORMAT_VERSION})")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(unknown[0], data[unknown[0]], "is not a scenario setting")
        return cls(**data)

    def key(self) -> str:
        """Hash of the settings: the run directory's name (seed included: another seed is another run)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def run_dir(self, root: Path) -> Path:
        """``root/scenario-<hash>``: where this scenario's logs and results live."""
        return root / f"scenario-{self.key()}"

    def save(self, directory: Path) -> Path:
        """Write ``scenario.json`` into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / SCENARIO_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, directory: Path) -> SearchScenario:
        """Read ``scenario.json`` from a run directory."""
        path = directory / SCENARIO_NAME
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{path}: cannot read the search scenario ({exc})") from exc
        return cls.from_dict(data)
