"""Selection calibration at build time: neighbour weighting, default policy and novelty threshold by leave-one-out.

Run on the portfolio's own known datasets whenever a portfolio is built or updated: each dataset (or its
group) is held out, each matcher refitted without it ranks batches of it, and

- the ``neighbors`` policy's k and weighting are those with the least mean normalized regret;
- the default policy is the policy with the least mean regret for the default matcher;
- the novelty threshold is the one (from :data:`~portfolio.evaluation.THRESHOLD_GRID`) under which falling
  back to the single best candidate for batches above it gives the least regret (ties: the highest, so
  the fallback is used as rarely as the data allow).

Numbers are at the serving batch size (64 fingerprints, as the CLI and the service draw).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from portfolio.candidates import Candidate
from portfolio.evaluation import (
    MIN_DATASETS,
    THRESHOLD_GRID,
    Evidence,
    Problem,
    choose_params,
    collect_evidence,
    mean_policy_regret,
    metafeature_params,
    novelty_auroc,
    novelty_of,
    reference_distances,
)
from portfolio.novelty import calibrate_novelty
from portfolio.performance import PerformanceData
from portfolio.policies import NeighborParams, SelectionSettings

SERVING_BATCH = 64
CALIBRATION_BATCHES = 10
#: when two policies tie, the earlier one is the default
POLICY_PREFERENCE: tuple[str, ...] = ("neighbors", "reduced", "single_best", "incumbent")


def _siblings(datasets: Sequence[str], groups: Mapping[str, str]) -> dict[str, list[str]]:
    """Per dataset: the other members of its group."""
    return {d: [o for o in datasets if o != d and groups.get(o, o) == groups.get(d, d)] for d in datasets}


def _fallback_regret(problem: Problem, ev: Evidence, params: NeighborParams, grouped: bool, threshold: float) -> float:
    """Mean regret of neighbors with single_best for batches whose novelty exceeds ``threshold``."""
    regrets = []
    for target, rankings in ev.rankings.items():
        hidden = problem.hidden(target, grouped)
        rows, cols = problem.rows(hidden), problem.columns(hidden)
        ref = reference_distances(ev, hidden)
        picked = [problem.pick("single_best" if novelty_of(ref, d) > threshold else "neighbors", rows, cols, r,
                               params) for r, d in zip(rankings, ev.nearest[target], strict=True)]
        regrets.append(problem.regret(float(np.mean([problem.scores[r, target] for r in picked])), target, rows))
    return float(np.mean(regrets))


def calibrate(data: PerformanceData, candidates: Sequence[Candidate], fingerprints: Mapping[str, np.ndarray],
              matchers: Mapping[str, Any], reduced: Sequence[str], groups: Mapping[str, str] | None = None,
              seed: int = 0, batch_size: int = SERVING_BATCH, n_batches: int = CALIBRATION_BATCHES,
              default_matcher: str = "mlp", summaries: Mapping[str, Mapping[str, Any]] | None = None,
              ) -> SelectionSettings:
    """Selection settings chosen by leave-one-(group-)out on the portfolio's own datasets (module docstring).
    With the known datasets' ``summaries``, the meta-feature neighbours' k and weighting are chosen too
    (``neighbors["metafeatures"]``, what ``evidence="metafeatures"`` serves)."""
    datasets = list(data.matrix.datasets)
    if len(datasets) < MIN_DATASETS:
        return SelectionSettings(reason=f"not calibrated: {len(datasets)} known datasets are too few for "
                                        "leave-one-out; the neighbors policy with k = 3 and score weights")
    groups = dict(groups or {})
    grouped = any(len(s) for s in _siblings(datasets, groups).values())
    problem = Problem.build(data, candidates, reduced, groups)
    size = min(batch_size, min(len(f) for f in fingerprints.values()))
    neighbors: dict[str, NeighborParams] = {}
    regrets: dict[str, dict[str, float]] = {}
    evidence: dict[str, Evidence] = {}
    for name, matcher in sorted(matchers.items()):
        ev = collect_evidence(problem, fingerprints, name, matcher.get_params(), [size], n_batches, seed, grouped)
        evidence[name] = ev[size]
        params, best = choose_params(problem, ev[size], grouped)
        neighbors[name] = params
        regrets[name] = {"neighbors": round(best, 4)}
        for policy in ("incumbent", "single_best", "reduced"):
            p = params if policy == "reduced" else NeighborParams(k=1, weighting="uniform")
            regrets[name][policy] = round(mean_policy_regret(problem, ev[size], policy, p, grouped), 4)
    meta_regret = None
    if summaries is not None:
        neighbors["metafeatures"], meta_regret, _ = metafeature_params(data, summaries, candidates, groups)
    main = default_matcher if default_matcher in matchers else sorted(matchers)[0]
    policy = min(POLICY_PREFERENCE, key=lambda p: (regrets[main][p], POLICY_PREFERENCE.index(p)))
    exclude = _siblings(datasets, groups) if grouped else None
    thresholds = {t: _fallback_regret(problem, evidence[main], neighbors[main], grouped, t) for t in THRESHOLD_GRID}
    threshold = min(thresholds, key=lambda t: (round(thresholds[t], 9), -t))
    novelty = calibrate_novelty(matchers[main], fingerprints, seed=seed, exclude=exclude, threshold=threshold)
    reason = (f"leave-one-{'group' if grouped else 'dataset'}-out over {len(datasets)} known datasets at "
              f"{size} fingerprints per probe, matcher {main}: mean normalized regret "
              + ", ".join(f"{p} {regrets[main][p]:.3f}" for p in POLICY_PREFERENCE)
              + f"; {policy} is the least (ties go to {', '.join(POLICY_PREFERENCE)} in that order)")
    evaluation = {"grouped": grouped, "batch_size": size, "n_batches": n_batches, "seed": seed,
                  "regrets": regrets, "default_matcher": main,
                  "fallback_regret": {str(t): round(r, 4) for t, r in thresholds.items()},
                  "novelty_auroc": _auroc(matchers[main], fingerprints, groups, size, n_batches, seed)}
    if meta_regret is not None:
        evaluation["metafeatures_neighbors_regret"] = round(meta_regret, 4)
    return SelectionSettings(default_policy=policy, reason=reason, neighbors=neighbors, novelty=novelty,
                             evaluation=evaluation)


def _auroc(matcher: Any, fingerprints: Mapping[str, np.ndarray], groups: Mapping[str, str], size: int,
           n_batches: int, seed: int) -> float | None:
    """AUROC of novelty: a dataset's batches with its whole group unknown (novel) against the same batches
    with only itself unknown (its siblings known). None when no dataset has a sibling."""
    from metafeatures.evaluation import draw_batches

    classes = [str(c) for c in matcher.classes_]
    siblings = _siblings(classes, groups)
    if not any(siblings.values()):
        return None
    from portfolio.novelty import held_out_distances

    ref = held_out_distances(matcher, fingerprints, size, n_batches, seed, exclude=siblings)
    novel, known = [], []
    for k, name in enumerate(classes):
        if not siblings[name]:
            continue
        reference = [d for other, ds in ref.items() if other != name and other not in siblings[name] for d in ds]
        rng = np.random.default_rng([seed, size, k, 1])
        for batch in draw_batches(fingerprints[name], size, n_batches, rng)[0]:
            dist = matcher.distance(batch)
            group_hidden = [i for i, c in enumerate(classes) if c != name and c not in siblings[name]]
            self_hidden = [i for i, c in enumerate(classes) if c != name]
            novel.append(novelty_of(reference, float(dist[group_hidden].min())))
            known.append(novelty_of(reference, float(dist[self_hidden].min())))
    value = novelty_auroc(novel, known)
    return None if value is None else round(value, 4)
