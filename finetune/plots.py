"""Learning-curve figure of a fine-tuning run (NAUC and accuracy over log-scaled time, ALC in the title)."""

from __future__ import annotations

from pathlib import Path

from finetune.metrics import transform_time
from finetune.result import FinetuneResult


def plot_curve(result: FinetuneResult, path: Path) -> Path:
    """Step plot of NAUC and accuracy against AutoDL's log-scaled time t̃; returns the PNG path."""
    from metafeatures.figures import new_axes, save_figure

    pts = [p for p in result.learning_curve if p.t <= result.time_budget]
    xs = [0.0] + [transform_time(p.t, result.time_budget, result.t0) for p in pts] + [1.0]
    fig, ax = new_axes(f"{result.dataset} · {result.config.get('backbone')} · ALC {result.alc:.3f} · {result.status}",
                       f"log-scaled time  log(1+t/{result.t0:g}) / log(1+{result.time_budget:g}/{result.t0:g})",
                       "score on the test split")
    for key, colour in (("nauc", "tab:blue"), ("accuracy", "tab:orange")):
        ys = [0.0] + [getattr(p, key) for p in pts]
        ax.step(xs, ys + ys[-1:], where="post", color=colour, label=key.upper() if key == "nauc" else key)
    ax.fill_between(xs, [0.0] + [p.nauc for p in pts] + [pts[-1].nauc if pts else 0.0], step="post",
                    alpha=0.15, color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_ylim(min(0.0, *[p.nauc for p in pts]) if pts else 0.0, 1.02)
    ax.legend(loc="lower right")
    return save_figure(fig, path)
