"""What widens the candidate pool beyond the BOHB incumbents: space-filling (Sobol) points of the search
space, and the seeded choice of cells that also run with a second seed (so the noise of a cell is known).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from ConfigSpace import (
    CategoricalHyperparameter,
    Configuration,
    ConfigurationSpace,
    UniformFloatHyperparameter,
    UniformIntegerHyperparameter,
)

from finetune.config import FinetuneConfig
from metafeatures.errors import ConfigError
from portfolio.candidates import Candidate

MAX_SOBOL = 4096


class _HasId(Protocol):
    id: str


def _from_unit(hp: Any, u: float) -> Any:
    """The value of one hyperparameter at position ``u`` in [0, 1) of its range."""
    if isinstance(hp, CategoricalHyperparameter):
        choices = list(hp.choices)
        return choices[min(int(u * len(choices)), len(choices) - 1)]
    if isinstance(hp, UniformIntegerHyperparameter):
        return int(min(hp.lower + math.floor(u * (hp.upper - hp.lower + 1)), hp.upper))
    if isinstance(hp, UniformFloatHyperparameter):
        if hp.log:
            return float(math.exp(math.log(hp.lower) + u * (math.log(hp.upper) - math.log(hp.lower))))
        return float(hp.lower + u * (hp.upper - hp.lower))
    raise ConfigError("space", hp.name, f"hyperparameter type {type(hp).__name__} has no Sobol mapping")


def sobol_configurations(space: ConfigurationSpace, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` space-filling configurations (scrambled Sobol points over every hyperparameter); inactive
    conditionals are dropped and a forbidden point is repaired by the nearest legal choice of the
    gated hyperparameters (lower ``last_k``, then ``pretrained=none``)."""
    from scipy.stats import qmc

    if not 1 <= n <= MAX_SOBOL:
        raise ConfigError("n_sobol", n, f"must be between 1 and {MAX_SOBOL}")
    hps = sorted(space.values(), key=lambda h: h.name)
    points = qmc.Sobol(d=len(hps), scramble=True, seed=seed).random(n)
    return [_legal(space, {hp.name: _from_unit(hp, float(u)) for hp, u in zip(hps, row, strict=True)})
            for row in points]


def _choices(space: ConfigurationSpace, name: str) -> list[Any]:
    hp = space[name]
    return list(hp.choices) if isinstance(hp, CategoricalHyperparameter) else []


def _legal(space: ConfigurationSpace, values: dict[str, Any]) -> dict[str, Any]:
    """Drop inactive conditionals; if the point is forbidden, lower ``last_k`` and then drop ImageNet."""
    if values.get("strategy") != "last_k":
        values.pop("last_k", None)
    for _ in range(8):
        try:
            return dict(Configuration(space, values=values))
        except ValueError:  # ForbiddenValueError and friends
            if values.get("last_k", 1) > 1:
                values["last_k"] -= 1
            elif values.get("pretrained") == "imagenet" and "none" in _choices(space, "pretrained"):
                values["pretrained"] = "none"
            else:
                raise
    raise ConfigError("space", values, "no legal configuration near this Sobol point")


def sobol_candidates(space: ConfigurationSpace, n: int, seed: int, base: Mapping[str, Any] | None = None,
                     ) -> list[Candidate]:
    """``n`` Sobol points as candidates ``sobol_000``, ... (source ``space_filling``), fixed fields from ``base``."""
    fixed = {**(base or {}), "seed": seed}
    return [Candidate(id=f"sobol_{k:03d}", configuration=FinetuneConfig.from_configspace(v, base=fixed).to_dict(),
                      source="space_filling") for k, v in enumerate(sobol_configurations(space, n, seed))]


def second_seed_cells(candidates: Sequence[_HasId], datasets: Sequence[str], fraction: float, seed: int,
                      ) -> set[tuple[str, str]]:
    """A seeded choice of ``ceil(fraction × cells)`` (candidate id, dataset) cells that also run seed + 1."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError("second_seed_fraction", fraction, "must be between 0 and 1")
    cells = [(c.id, d) for c in candidates for d in sorted(datasets)]
    k = math.ceil(fraction * len(cells))
    rng = np.random.default_rng([seed, zlib.crc32(b"second-seed")])
    return {cells[int(i)] for i in rng.choice(len(cells), size=k, replace=False)} if k else set()


__all__ = ["second_seed_cells", "sobol_candidates", "sobol_configurations"]
