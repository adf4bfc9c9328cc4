"""Fine-tune held-out datasets with the recommended configuration and with the seed-000 baseline, side by side.

The baseline is ``FinetuneConfig()`` itself: mobilenet_v2 with its defaults (ImageNet weights, full
fine-tuning, Adam 1e-3), the configuration of seed 000. Both runs get the same wall-clock budget, seed and
ALC clock, and the dataset is decoded into the training cache before either starts, so the first run does
not pay for a decoding the second one then skips. The table reports ALC, final NAUC and the return time
(the first prediction), as seed 000's Table I does.

One 10-s run is noisy (two seeds of a portfolio cell differ by 0.12 ALC on average, docs/evaluation.md), so
``repeats`` runs each arm with that many training seeds, alternating the arms so that a drift of the machine's
speed reaches both, and compares their means.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finetune.config import FinetuneConfig
from finetune.data import prepare
from finetune.result import FinetuneResult
from finetune.trainer import TrainOptions, finetune
from metafeatures.datasets import Dataset
from metafeatures.errors import ConfigError
from metafeatures.fingerprint import Fingerprinter
from metafeatures.summary import content_hash
from portfolio.recommender import EvidenceName, Recommender, SelectionRequest, recommend_dataset

ARMS: tuple[str, ...] = ("recommended", "baseline")
METRICS: tuple[str, ...] = ("alc", "final_nauc", "return_time")
MAX_REPEATS = 10
_AVERAGED = ("alc", "final_nauc", "final_accuracy", "return_time", "wall_time", "steps")
Say = Callable[[str], None]


def baseline_config(seed: int = 0) -> FinetuneConfig:
    """The seed-000 baseline: mobilenet_v2 with FinetuneConfig's defaults, at ``seed``."""
    return FinetuneConfig(seed=seed)


def _summary(result: FinetuneResult) -> dict[str, Any]:
    """The numbers of one run the comparison reports."""
    return {"alc": round(result.alc, 4), "final_nauc": round(result.final_nauc, 4),
            "final_accuracy": round(result.final_accuracy, 4), "return_time": round(result.return_time, 2),
            "wall_time": round(result.wall_time, 2), "steps": result.steps, "status": result.status,
            "config": result.config}


def _mean_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One arm over several seeds: the mean of each number, the first run's configuration, every run kept."""
    if len(runs) == 1:
        return runs[0]
    out: dict[str, Any] = {k: round(float(np.mean([r[k] for r in runs])), 4) for k in _AVERAGED}
    out["alc_sd"] = round(float(np.std([r["alc"] for r in runs], ddof=1)), 4)
    statuses = sorted({r["status"] for r in runs})
    out["status"] = statuses[0] if len(statuses) == 1 else "mixed: " + ", ".join(statuses)
    out["config"] = runs[0]["config"]
    out["runs"] = runs
    return out


def _differs(row: Mapping[str, Any]) -> bool:
    """Whether the recommended configuration differs from the baseline's (the training seed aside)."""
    rec, base = dict(row["recommended"]["config"]), dict(row["baseline"]["config"])
    rec.pop("seed", None)
    base.pop("seed", None)
    return rec != base


@dataclass
class FinetuneComparison:
    """Per held-out dataset: the recommendation and the two runs' ALC, NAUC and return time."""

    rows: dict[str, dict[str, Any]]
    settings: dict[str, Any]

    def means(self) -> dict[str, dict[str, float]]:
        """Mean of each metric per arm over the datasets."""
        return {arm: {m: round(float(np.mean([r[arm][m] for r in self.rows.values()])), 4) for m in METRICS}
                for arm in ARMS}

    def wins(self) -> dict[str, int]:
        """On how many datasets the recommendation's (mean) ALC is higher than the baseline's, lower, or equal;
        ``differs``/``differs_higher`` count only datasets whose recommendation is not the baseline's own
        configuration (where it is, the two arms differ by the wall-clock noise alone)."""
        diffs = [r["recommended"]["alc"] - r["baseline"]["alc"] for r in self.rows.values()]
        differs = [_differs(r) for r in self.rows.values()]
        return {"recommended_higher": sum(d > 0 for d in diffs), "baseline_higher": sum(d < 0 for d in diffs),
                "equal": sum(d == 0 for d in diffs), "datasets": len(diffs), "differs": sum(differs),
                "differs_higher": sum(d > 0 for d, o in zip(diffs, differs, strict=True) if o)}

    def to_json(self) -> dict[str, Any]:
        """``{"datasets": {NAME: {"recommendation", "recommended", "baseline"}}, "mean", "wins", "settings"}``;
        with repeats an arm holds the means, ``alc_sd`` and its ``runs``."""
        return {"datasets": self.rows, "mean": self.means(), "wins": self.wins(), "settings": self.settings}

    def table(self) -> str:
        """Seed 000 Table I style: ALC, NAUC and return time of both arms per dataset, then the means."""
        head = (f"{'dataset':<18}{'ALC rec':>9}{'ALC base':>10}{'NAUC rec':>10}{'NAUC base':>11}"
                f"{'t1 rec s':>10}{'t1 base s':>11}  recommended (incumbent of)")
        rows = [f"{name:<18}{r['recommended']['alc']:>9.3f}{r['baseline']['alc']:>10.3f}"
                f"{r['recommended']['final_nauc']:>10.3f}{r['baseline']['final_nauc']:>11.3f}"
                f"{r['recommended']['return_time']:>10.1f}{r['baseline']['return_time']:>11.1f}  "
                f"{r['recommended']['config']['backbone']} ({r['recommendation']['candidate']})"
                for name, r in self.rows.items()]
        m = self.means()
        mean = (f"{'mean':<18}{m['recommended']['alc']:>9.3f}{m['baseline']['alc']:>10.3f}"
                f"{m['recommended']['final_nauc']:>10.3f}{m['baseline']['final_nauc']:>11.3f}"
                f"{m['recommended']['return_time']:>10.1f}{m['baseline']['return_time']:>11.1f}")
        w = self.wins()
        repeats = int(self.settings.get("repeats", 1))
        over = f" (means over {repeats} training seeds)" if repeats > 1 else ""
        wins = (f"recommendation higher on {w['recommended_higher']} of {w['datasets']} datasets, baseline on "
                f"{w['baseline_higher']}{over}; where the recommendation is not the baseline's configuration: higher "
                f"on {w['differs_higher']} of {w['differs']}")
        return "\n".join([head, "-" * len(head), *rows, mean, wins])


def compare_finetune(recommender: Recommender, fingerprinter: Fingerprinter, datasets: Mapping[str, Dataset],
                     budget_s: float, out_dir: Path, seed: int = 0, n_samples: int = 64, policy: str | None = None,
                     time_budget: float = 1200.0, t0: float = 60.0, test_fraction: float = 0.2,
                     device: str | None = None, evidence: EvidenceName = "fingerprints", repeats: int = 1,
                     progress: bool = False, say: Say | None = None) -> FinetuneComparison:
    """For each held-out dataset: fingerprint, recommend (ranked by ALC at ``time_budget``), then fine-tune the
    recommendation and the baseline, each with training seeds ``seed`` … ``seed + repeats - 1``."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise ConfigError("repeats", repeats, f"must be an integer in 1..{MAX_REPEATS}")
    say = say or (lambda _message: None)
    rows: dict[str, dict[str, Any]] = {}
    request = SelectionRequest(policy=policy, time_budget_s=time_budget, top_k=3,  # type: ignore[arg-type]
                               evidence=evidence)
    for name, ds in datasets.items():
        rec, _ = recommend_dataset(recommender, fingerprinter, ds, request, n_samples=n_samples, seed=seed,
                                   progress=progress, content_hash=content_hash(ds))
        row: dict[str, Any] = {"recommendation": {"best_match": rec.best_match, "incumbent_of": rec.incumbent_of,
                                                  "candidate": rec.candidates[0].id, "policy": rec.policy,
                                                  "novelty": rec.novelty, "fallback": rec.fallback.model_dump(),
                                                  "neighbors": [n.model_dump() for n in rec.neighbors]}}
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
        for r in range(repeats):
            run_seed = seed + r
            configs = {"recommended": FinetuneConfig.from_dict({**rec.configuration, "seed": run_seed}),
                       "baseline": baseline_config(run_seed)}
            for config in configs.values():  # decode once, so neither arm's clock pays for decoding
                prepare(ds, config.input_size, config.max_edge, test_fraction, config.seed, use_cache=True)
            for arm in ARMS if r % 2 == 0 else ARMS[::-1]:  # alternate which arm runs first
                config = configs[arm]
                say(f"{name}: fine-tuning the {arm} configuration ({config.backbone}, seed {run_seed}) "
                    f"for {budget_s:g} s")
                options = TrainOptions(budget_s=budget_s, time_budget=time_budget, t0=t0,
                                       test_fraction=test_fraction, device=device, save_checkpoint=False,
                                       show_progress=progress)
                where = out_dir / name / arm if repeats == 1 else out_dir / name / arm / f"seed{run_seed}"
                runs[arm].append(_summary(finetune(config, ds, options, out_dir=where)))
        for arm in ARMS:
            row[arm] = _mean_of(runs[arm])
        rows[name] = row
    settings = {"budget_s": budget_s, "seed": seed, "n_samples": n_samples, "matcher": recommender.matcher_name,
                "policy": policy or recommender.portfolio.selection.default_policy, "time_budget": time_budget,
                "t0": t0, "evidence": evidence, "repeats": repeats,
                "portfolio_version": recommender.portfolio.version}
    return FinetuneComparison(rows=rows, settings=settings)
