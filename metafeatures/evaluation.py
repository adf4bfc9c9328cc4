"""Dataset-identification accuracy of the matchers versus test batch size (seed 001 Fig. 5)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metafeatures.fingerprint import Fingerprints
from metafeatures.matchers import get_matcher


@dataclass
class MatcherEval:
    """Accuracy per matcher and batch size (mean over datasets), with the per-dataset breakdown."""

    accuracy: dict[str, dict[int, float]]
    per_dataset: dict[str, dict[int, dict[str, float]]]
    fit_seconds: dict[str, float]
    n_fit: dict[str, int]
    n_heldout: dict[str, int]
    n_batches: int
    spec: dict[str, Any]
    with_replacement: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``--json`` shape: ``{"matchers": {NAME: {"BATCH": acc}}, ...}``."""
        return {
            "matchers": {m: {str(b): round(a, 4) for b, a in accs.items()} for m, accs in self.accuracy.items()},
            "per_dataset": {m: {str(b): {d: round(a, 4) for d, a in per.items()} for b, per in by_b.items()}
                            for m, by_b in self.per_dataset.items()},
            "fit_seconds": {m: round(s, 3) for m, s in self.fit_seconds.items()},
            "n_fit": self.n_fit, "n_heldout": self.n_heldout, "n_batches": self.n_batches,
            "batches_drawn_with_replacement": self.with_replacement, "fingerprint_spec": self.spec,
        }

    def table(self) -> str:
        """Plain-text table: matchers as rows, batch sizes as columns."""
        sizes = sorted({b for accs in self.accuracy.values() for b in accs})
        head = f"{'matcher':<10}" + "".join(f"{'b=' + str(b):>8}" for b in sizes) + f"{'fit s':>8}"
        rows = [f"{m:<10}" + "".join(f"{accs[b]:>8.3f}" for b in sizes) + f"{self.fit_seconds[m]:>8.1f}"
                for m, accs in self.accuracy.items()]
        return "\n".join([head, "-" * len(head), *rows])


def split_fit_heldout(fps: dict[str, Fingerprints], fit_fraction: float, seed: int,
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Per dataset, a seeded split of fingerprint rows into a fit part and a held-out part."""
    if not 0.0 < fit_fraction < 1.0:
        raise ValueError(f"fit_fraction must be in (0, 1), got {fit_fraction}")
    rng = np.random.default_rng(seed)
    fit_x, fit_y, held = [], [], {}
    for name, fp in sorted(fps.items()):
        order = rng.permutation(len(fp.features))
        cut = max(1, min(len(order) - 1, round(len(order) * fit_fraction)))
        fit_x.append(fp.features[order[:cut]])
        fit_y.extend([name] * cut)
        held[name] = fp.features[order[cut:]]
    return np.concatenate(fit_x), np.array(fit_y, dtype=str), held


def draw_batches(features: np.ndarray, size: int, n_batches: int, rng: np.random.Generator,
                 ) -> tuple[list[np.ndarray], bool]:
    """``n_batches`` random batches of ``size`` rows; with replacement only if too few rows exist."""
    replace = size > len(features)
    return [features[rng.choice(len(features), size=size, replace=replace)] for _ in range(n_batches)], replace


def evaluate_matchers(fps: dict[str, Fingerprints], batch_sizes: Sequence[int],
                      matchers: Sequence[str] = ("kmeans", "mlp", "moments"), fit_fraction: float = 0.5,
                      n_batches: int = 40, seed: int = 0, params: dict[str, dict[str, Any]] | None = None,
                      ) -> MatcherEval:
    """Fit every matcher on the fit parts of all datasets, score identification of held-out batches."""
    if len(fps) < 2:
        raise ValueError("matcher evaluation needs at least two datasets")
    first = next(iter(fps.values()))
    for fp in fps.values():  # image and video fingerprints of one network compare (their base specs agree)
        first.spec.base().require_same(fp.spec.base())
    fit_x, fit_y, held = split_fit_heldout(fps, fit_fraction, seed)
    result = MatcherEval(accuracy={}, per_dataset={}, fit_seconds={}, n_batches=n_batches,
                         n_fit={d: int((fit_y == d).sum()) for d in held},
                         n_heldout={d: len(h) for d, h in held.items()}, spec=first.spec.base().to_dict())
    for name in matchers:
        matcher = get_matcher(name, **(params or {}).get(name, {}))
        start = time.perf_counter()
        matcher.fit(fit_x, fit_y)
        result.fit_seconds[name] = time.perf_counter() - start
        result.accuracy[name], result.per_dataset[name] = {}, {}
        for size in batch_sizes:
            rng = np.random.default_rng(seed + size)
            per: dict[str, float] = {}
            for dataset, feats in held.items():
                batches, replaced = draw_batches(feats, size, n_batches, rng)
                if replaced and size not in result.with_replacement.setdefault(dataset, []):
                    result.with_replacement[dataset].append(size)
                per[dataset] = float(np.mean([matcher.predict(b) == dataset for b in batches]))
            result.per_dataset[name][size] = per
            result.accuracy[name][size] = float(np.mean(list(per.values())))
    return result


def plot_accuracy(result: MatcherEval, path: Path) -> Path:
    """PNG of identification accuracy against test batch size (log scale), one line per matcher."""
    from metafeatures.figures import new_axes, save_figure

    fig, ax = new_axes(f"{len(result.n_heldout)} datasets, {result.spec['backbone']} ({result.spec['weights']})",
                       "test batch size (images)", "dataset identification accuracy")
    for name, accs in result.accuracy.items():
        sizes = sorted(accs)
        ax.plot(sizes, [accs[b] for b in sizes], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right")
    return save_figure(fig, path)
