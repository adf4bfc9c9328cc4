"""The search space (cell layout, widths, candidate operations) and a discrete architecture (genotype).

A cell takes the previous cell's output, projects it to C channels (node 0) and computes nodes
1..N, each the sum of one operation on each of the two previous nodes (seed 004:
x^(j) = Σ_{i<j} o^(i,j)(x^(i)) over the previous two); its output concatenates nodes 1..N.
In a reduction cell the edges leaving node 0 have stride 2 and C doubles.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from finetune.nas.ops import EDGE_OPS, STEM_OPS
from metafeatures.errors import ConfigError

SPACE_FORMAT_VERSION = 1
CELL_KINDS: tuple[str, ...] = ("normal", "reduce")


def cell_edges(n_nodes: int) -> list[tuple[int, int]]:
    """The (from, to) node pairs of a cell, in a fixed order: each node j ≥ 1 reads nodes j-2 and j-1."""
    return [(i, j) for j in range(1, n_nodes + 1) for i in (j - 2, j - 1) if i >= 0]


@dataclass(frozen=True)
class SearchSpace:
    """Shape of the searchable network: input side, stem width, cell kinds, nodes per cell, candidates."""

    input_size: int = 32
    channels: int = 16
    cells: tuple[str, ...] = ("normal", "reduce", "normal", "reduce")
    n_nodes: int = 2
    edge_ops: tuple[str, ...] = EDGE_OPS
    stem_ops: tuple[str, ...] = STEM_OPS
    format_version: int = SPACE_FORMAT_VERSION

    def __post_init__(self) -> None:
        """Bound every field (small networks for CPU search; bad values name the field)."""
        _int_in("input_size", self.input_size, 8, 256)
        _int_in("channels", self.channels, 4, 128)
        _int_in("n_nodes", self.n_nodes, 1, 6)
        if not isinstance(self.cells, tuple) or not 1 <= len(self.cells) <= 12 or any(
                c not in CELL_KINDS for c in self.cells):
            raise ConfigError("cells", self.cells, f"1 to 12 cell kinds out of {', '.join(CELL_KINDS)}")
        for field, ops, known in (("edge_ops", self.edge_ops, EDGE_OPS), ("stem_ops", self.stem_ops, STEM_OPS)):
            if not isinstance(ops, tuple) or not ops or len(set(ops)) != len(ops) or any(o not in known for o in ops):
                raise ConfigError(field, ops, f"a non-empty list of distinct names out of {', '.join(known)}")
        if self.format_version != SPACE_FORMAT_VERSION:
            raise ConfigError("format_version", self.format_version,
                              f"search space format not supported (this metarec reads {SPACE_FORMAT_VERSION})")

    @property
    def edges(self) -> list[tuple[int, int]]:
        """The edges of every cell."""
        return cell_edges(self.n_nodes)

    def cell_channels(self) -> list[int]:
        """Node width C of each cell (doubling at each reduction cell)."""
        widths, c = [], self.channels
        for kind in self.cells:
            c = c * 2 if kind == "reduce" else c
            widths.append(c)
        return widths

    @property
    def out_channels(self) -> int:
        """Channels of the last cell's output (the backbone's feature channels)."""
        return self.cell_channels()[-1] * self.n_nodes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: Any) -> SearchSpace:
        """Rebuild from ``to_dict`` output; unknown or ill-typed fields raise ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError("space", data, "expected a mapping of SearchSpace fields")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(unknown[0], data[unknown[0]], "unknown SearchSpace field")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)  # type: ignore[arg-type]  # each field is checked in __post_init__

    def digest(self) -> str:
        """Short sha256 of the canonical JSON (keys latency tables to the space they were measured for)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Genotype:
    """A discrete architecture of a space: the stem operation and one operation name per edge of each cell."""

    stem: str
    cells: tuple[tuple[str, ...], ...]

    def validate(self, space: SearchSpace) -> Genotype:
        """Refuse a genotype that does not fit ``space``; returns self."""
        if self.stem not in space.stem_ops:
            raise ConfigError("genotype.stem", self.stem, f"not one of {', '.join(space.stem_ops)}")
        if len(self.cells) != len(space.cells) or any(len(c) != len(space.edges) for c in self.cells):
            raise ConfigError("genotype.cells", self.cells,
                              f"needs {len(space.cells)} cells of {len(space.edges)} edges")
        bad = [o for cell in self.cells for o in cell if o not in space.edge_ops]
        if bad:
            raise ConfigError("genotype.cells", bad[0], f"not one of {', '.join(space.edge_ops)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"stem": self.stem, "cells": [list(c) for c in self.cells]}

    @classmethod
    def from_dict(cls, data: Any) -> Genotype:
        """Rebuild from ``to_dict`` output."""
        if (not isinstance(data, dict) or not isinstance(data.get("stem"), str)
                or not isinstance(data.get("cells"), list)
                or not all(isinstance(c, list) and all(isinstance(o, str) for o in c) for c in data["cells"])):
            raise ConfigError("genotype", data, "expected {stem: str, cells: [[op, ...], ...]}")
        return cls(stem=data["stem"], cells=tuple(tuple(c) for c in data["cells"]))

    @classmethod
    def uniform(cls, space: SearchSpace, edge_op: str, stem_op: str | None = None) -> Genotype:
        """Every edge ``edge_op`` (e.g. all-skip, for the latency table's base measurement)."""
        return cls(stem=stem_op or space.stem_ops[0],
                   cells=tuple(tuple(edge_op for _ in space.edges) for _ in space.cells))


def _int_in(field: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(field, value, f"must be an integer from {low} to {high}")
