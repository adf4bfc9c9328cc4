"""The BOHB objective: fine-tune a sampled configuration on one dataset; loss = −score.

Runs inside BOHB worker processes (named ``offline_search.objective:finetune_objective``). A failure or a
diverged loss is reported as the worst loss with the reason; it never crashes the search.
"""

from __future__ import annotations

from typing import Any

from finetune.config import FinetuneConfig
from finetune.trainer import TrainOptions, finetune

WORST_LOSS = 1.0  # scores (NAUC, ALC) lie in [-1, 1]; loss = -score, so +1 is the worst possible


def finetune_objective(config: dict[str, Any], budget: float, dataset: str, budget_kind: str = "epochs",
                       score: str = "alc", base: dict[str, Any] | None = None, time_budget: float = 1200.0,
                       t0: float = 60.0, test_fraction: float = 0.2) -> dict[str, Any]:
    """Train ``config`` on ``dataset`` for ``budget`` epochs or seconds and report −score with the details."""
    cfg = FinetuneConfig.from_configspace(config, base=base)
    options = TrainOptions(epochs=budget if budget_kind == "epochs" else None,
                           budget_s=budget if budget_kind == "seconds" else None,
                           time_budget=time_budget, t0=t0, test_fraction=test_fraction, save_checkpoint=False)
    result = finetune(cfg, dataset, options)
    info = {"alc": result.alc, "final_nauc": result.final_nauc, "final_accuracy": result.final_accuracy,
            "return_time": result.return_time, "wall_time": result.wall_time, "steps": result.steps,
            "status": result.status, "device": result.device,
            "budget_s": result.budget_s if result.budget_s is not None else result.wall_time,
            "curve": [[round(pt.t, 4), round(pt.nauc, 6)] for pt in result.learning_curve],
            "time_budget": time_budget, "t0": t0}
    if result.status != "completed":
        return {"loss": WORST_LOSS, "info": {**info, "error": result.reason or result.status}}
    value = result.alc if score == "alc" else result.final_nauc
    return {"loss": -float(value), "info": info}
