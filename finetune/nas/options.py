"""Options of a search (seed 004): latency weight or budget, wall-clock budget, feedback, sizes, seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from finetune.nas.space import SearchSpace
from metafeatures.errors import ConfigError


@dataclass(frozen=True)
class SearchOptions:
    """How to search: latency weight β (per ms) or a latency budget (ms, batch 1), the wall-clock budget,
    feedback blocks on/off, sizes and seeds. Every field is bounded; bad values raise ConfigError."""

    budget_s: float
    beta: float | None = None
    latency_budget_ms: float | None = None
    feedback: bool = True
    copies: int = 2
    space: SearchSpace = field(default_factory=SearchSpace)
    batch_size: int = 16
    lr: float = 3e-3
    arch_lr: float = 5e-2
    train_fraction: float = 0.25
    warmup_fraction: float = 0.3
    test_fraction: float = 0.2
    seed: int = 0
    device: str | None = None
    threads: int | None = 1

    def __post_init__(self) -> None:
        """Validate at the boundary (the CLI and Python callers get the same one-line errors)."""
        if self.beta is not None and self.latency_budget_ms is not None:
            raise ConfigError("beta", self.beta, "give either a latency weight (beta) or a latency budget, not both")
        if self.beta is None and self.latency_budget_ms is None:
            raise ConfigError("beta", None, "give a latency weight (beta, 0 = no latency term) or a latency budget")
        _number("budget_s", self.budget_s, 0.0, 86400.0)
        if self.beta is not None:
            _number("beta", self.beta, 0.0, 1e4, allow_low=True)
        if self.latency_budget_ms is not None:
            _number("latency_budget_ms", self.latency_budget_ms, 0.0, 1e5)
        _int("copies", self.copies, 1, 8)
        _int("batch_size", self.batch_size, 2, 1024)
        _int("seed", self.seed, 0, 2**32 - 1)
        if self.threads is not None:
            _int("threads", self.threads, 1, 256)
        _number("lr", self.lr, 0.0, 1.0)
        _number("arch_lr", self.arch_lr, 0.0, 1.0)
        _number("train_fraction", self.train_fraction, 0.0, 0.9, allow_low=True)
        _number("warmup_fraction", self.warmup_fraction, 0.0, 0.9, allow_low=True)
        _number("test_fraction", self.test_fraction, 0.0, 0.9)
        if not isinstance(self.space, SearchSpace):
            raise ConfigError("space", self.space, "must be a SearchSpace")
        if not isinstance(self.feedback, bool):
            raise ConfigError("feedback", self.feedback, "must be true or false")

    @property
    def n_copies(self) -> int:
        """Parallel kernel sets of the feedback blocks (1 when they are off)."""
        return self.copies if self.feedback else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the search arguments recorded in a saved entry)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "space"}
        out["space"] = self.space.to_dict()
        return out


def _number(name: str, value: object, low: float, high: float, allow_low: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (value >= low if allow_low else value > low) or value > high:  # type: ignore[operator]
        bound = ">=" if allow_low else ">"
        raise ConfigError(name, value, f"must be a number {bound} {low:g} and <= {high:g}")


def _int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, value, f"must be an integer from {low} to {high}")
