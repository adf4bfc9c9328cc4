"""Seed 004's latency term: a per-operation latency table measured on the target device, LAT(α) and predictions.

Each candidate operation is timed alone, in its inference form (meta-kernels merged), at the shape it
has on its edge; ``base_ms`` is what the operations leave out (preprocessing, sums, concatenations),
measured once as an all-skip network minus its skip entries. The prediction for a genotype is base +
Σ chosen entries; LAT(α) is its expectation under softmax(α), differentiable in α.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from finetune.nas.network import DerivedNet
from finetune.nas.ops import build_edge_op, build_stem_op, merge_meta_kernels
from finetune.nas.space import Genotype, SearchSpace
from metafeatures.errors import ArtifactError, ConfigError

TABLE_FORMAT_VERSION = 1


def device_description(device: torch.device) -> str:
    """What latencies depend on: the processor or GPU model, torch's thread count (CPU) and torch version."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"cuda:{name}; torch {torch.__version__}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    return f"cpu:{model}; {os.cpu_count()} cores; {torch.get_num_threads()} torch threads; torch {torch.__version__}"


def _edge_shapes(space: SearchSpace) -> list[list[tuple[int, int, int]]]:
    """(channels, input side, stride) of every edge of every cell."""
    side = (space.input_size + 1) // 2  # after the stride-2 stem
    out = []
    for kind, c in zip(space.cells, space.cell_channels(), strict=True):
        reduce = kind == "reduce"
        out.append([(c, side, 2 if reduce and i == 0 else 1) for i, _ in space.edges])
        side = (side + 1) // 2 if reduce else side
    return out


def _key(op: str, shape: tuple[int, int, int]) -> str:
    c, side, stride = shape
    return f"{op}|c{c}|{side}px|s{stride}"


@dataclass
class LatencyTable:
    """Milliseconds per operation and shape on one device at one batch size, plus the fixed remainder."""

    space: SearchSpace
    device: str
    batch_size: int
    entries: dict[str, float]
    base_ms: float
    created_at: str = ""
    format_version: int = TABLE_FORMAT_VERSION
    stats: dict[str, Any] = field(default_factory=dict)

    def edge_ms(self, cell: int, edge: int, op: str) -> float:
        """Latency of ``op`` on edge ``edge`` of cell ``cell``."""
        return self.entries[_key(op, _edge_shapes(self.space)[cell][edge])]

    def stem_ms(self, op: str) -> float:
        """Latency of the stem operation ``op``."""
        return self.entries[f"stem:{op}|{self.space.input_size}px"]

    def predict_ms(self, genotype: Genotype) -> float:
        """Predicted latency of the discrete network of ``genotype``."""
        genotype.validate(self.space)
        total = self.base_ms + self.stem_ms(genotype.stem)
        for k, ops in enumerate(genotype.cells):
            total += sum(self.edge_ms(k, e, o) for e, o in enumerate(ops))
        return total

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(stem latencies (n_stem_ops,), edge latencies (n_cells, n_edges, n_ops)) in ms."""
        sp = self.space
        stem = torch.tensor([self.stem_ms(o) for o in sp.stem_ops])
        cells = torch.tensor([[[self.edge_ms(k, e, o) for o in sp.edge_ops] for e in range(len(sp.edges))]
                              for k in range(len(sp.cells))])
        return stem, cells

    def expected_ms(self, alpha_stem: torch.Tensor, alpha_cells: torch.Tensor) -> torch.Tensor:
        """LAT(α): the expected latency under softmax(α), differentiable in α (seed 004's latency term)."""
        stem, cells = (t.to(alpha_cells.device) for t in self.tensors())
        return (self.base_ms + (F.softmax(alpha_stem, 0) * stem).sum()
                + (F.softmax(alpha_cells, -1) * cells).sum())

    def check_matches(self, space: SearchSpace, device: str, batch_size: int, source: str = "") -> None:
        """Refuse a table measured for another space, device or batch size (latencies would not apply)."""
        for what, mine, theirs in (("search space", self.space.to_dict(), space.to_dict()),
                                   ("device", self.device, device), ("batch size", self.batch_size, batch_size)):
            if mine != theirs:
                raise ArtifactError(f"{source or 'latency table'}: measured for {what} {mine!r}, "
                                    f"not {theirs!r}; measure a new table on this device")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with its format version."""
        return {"format_version": self.format_version, "space": self.space.to_dict(), "device": self.device,
                "batch_size": self.batch_size, "entries": dict(self.entries), "base_ms": self.base_ms,
                "created_at": self.created_at, "stats": dict(self.stats)}

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> LatencyTable:
        """Rebuild from ``to_dict`` output; another format version or a malformed table raises ArtifactError."""
        where = source or "latency table"
        if not isinstance(data, dict) or data.get("format_version") != TABLE_FORMAT_VERSION:
            version = data.get("format_version") if isinstance(data, dict) else None
            raise ArtifactError(f"{where}: latency table format version {version!r} is not supported "
                                f"(this metarec reads {TABLE_FORMAT_VERSION})")
        try:
            table = cls(space=SearchSpace.from_dict(data["space"]), device=str(data["device"]),
                        batch_size=int(data["batch_size"]),
                        entries={str(k): float(v) for k, v in data["entries"].items()},
                        base_ms=float(data["base_ms"]), created_at=str(data.get("created_at", "")),
                        stats=dict(data.get("stats", {})))
            table.tensors()  # every entry the space needs is present
        except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
            raise ArtifactError(f"{where}: malformed latency table ({type(exc).__name__}: {exc})") from exc
        return table

    def save(self, path: Path) -> Path:
        """Write the table as JSON (atomically)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> LatencyTable:
        """Read a table written by ``save``."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{path}: not a readable latency table ({type(exc).__name__})") from exc
        return cls.from_dict(data, source=str(path))


def _timer(module: nn.Module, x: torch.Tensor, device: torch.device, inner: int) -> float:
    """Seconds per call, averaged over ``inner`` back-to-back calls."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(inner):
        module(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / inner


def time_modules(jobs: dict[str, tuple[nn.Module, torch.Tensor]], device: torch.device, rounds: int = 21,
                 window_ms: float = 5.0) -> dict[str, float]:
    """Milliseconds per forward pass of each (module, input), in eval and inference mode.

    ``rounds`` rounds each time every module once, interleaved so that drift hits all alike; a module's
    timing window repeats it back to back for about ``window_ms`` (a tiny op and a whole network are
    timed over windows of the same length, so a shared machine disturbs both alike); median of rounds.
    """
    if not 1 <= rounds <= 1000 or not 0.0 < window_ms <= 1000.0:
        raise ConfigError("rounds/window_ms", (rounds, window_ms), "rounds 1-1000, window 0-1000 ms")
    timed: dict[str, list[float]] = {k: [] for k in jobs}
    modes = {k: m.training for k, (m, _) in jobs.items()}
    try:
        with torch.inference_mode():
            prepared = {k: (m.to(device).eval(), x.to(device)) for k, (m, x) in jobs.items()}
            inner = {}
            for key, (module, x) in prepared.items():
                module(x)  # warm-up
                once = min(_timer(module, x, device, 1) for _ in range(3))
                inner[key] = max(1, min(1000, round(window_ms / 1000 / max(once, 1e-7))))
            for _ in range(rounds):
                for key, (module, x) in prepared.items():
                    timed[key].append(_timer(module, x, device, inner[key]))
    finally:
        for k, (m, _) in jobs.items():
            m.train(modes[k])
    return {k: 1000 * statistics.median(v) for k, v in timed.items()}


def measure_table(space: SearchSpace, device: torch.device, batch_size: int = 1, rounds: int = 21,
                  window_ms: float = 5.0, extra: dict[str, tuple[nn.Module, torch.Tensor]] | None = None,
                  ) -> LatencyTable:
    """Time every (operation, shape) of ``space`` and the all-skip network on ``device`` with
    :func:`time_modules`; ``base_ms`` is the all-skip network minus its table entries. ``extra`` modules
    are timed in the same rounds (ms in ``stats['extra_ms']``): predictions and measurements made under
    the same machine load."""
    if not 1 <= batch_size <= 1024:
        raise ConfigError("batch_size", batch_size, "must be an integer from 1 to 1024")
    side = space.input_size
    jobs: dict[str, tuple[nn.Module, torch.Tensor]] = {}
    for op in space.stem_ops:
        jobs[f"stem:{op}|{side}px"] = (build_stem_op(op, space.channels), torch.randn(batch_size, 3, side, side))
    for shapes in _edge_shapes(space):
        for shape in shapes:
            for op in space.edge_ops:
                c, s, stride = shape
                module = merge_meta_kernels(build_edge_op(op, c, stride))
                jobs.setdefault(_key(op, shape), (module, torch.randn(batch_size, c, s, s)))
    skeleton = Genotype.uniform(space, "skip", space.stem_ops[0])
    jobs["__all_skip__"] = (DerivedNet(space, skeleton), torch.randn(batch_size, 3, side, side))
    extra = extra or {}
    ms = time_modules({**jobs, **{f"__extra__{k}": v for k, v in extra.items()}}, device, rounds, window_ms)
    extra_ms = {k: ms.pop(f"__extra__{k}") for k in extra}
    all_skip = ms.pop("__all_skip__")
    table = LatencyTable(space=space, device=device_description(device), batch_size=batch_size, entries=ms,
                         base_ms=0.0, created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                         stats={"rounds": rounds, "window_ms": window_ms, "all_skip_ms": all_skip,
                                **({"extra_ms": extra_ms} if extra_ms else {})})
    table.base_ms = max(0.0, all_skip - table.predict_ms(skeleton))
    return table
