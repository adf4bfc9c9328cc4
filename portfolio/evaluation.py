"""Leave-one-out evaluation of the selection policies against baselines (plain and grouped).

For every known dataset ``t`` the datasets it may not know about are hidden: ``t`` alone (leave-one-
dataset-out) or its whole group, every derivative of the same source (leave-one-group-out, ZAP's
protocol). Hidden datasets' columns are no evidence and the candidates tuned on them (their incumbents)
may not be recommended. Each matcher is refitted without the hidden datasets, random batches of ``t``'s
fingerprints are ranked, and each policy (:mod:`portfolio.policies`) picks a candidate per batch; the
pick's score on ``t`` at the time budget is read from the matrix, so nothing is retrained.

Normalized regret on ``t`` is ``(best - score) / (best - worst)`` over the candidates allowed for ``t``:
0 for the best of them, 1 for the worst (0 when all score the same).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metafeatures.errors import ConfigError
from metafeatures.evaluation import draw_batches
from metafeatures.matchers import get_matcher
from metafeatures.matchers.registry import matcher_class
from portfolio.candidates import Candidate
from portfolio.metaneighbors import meta_features, metafeature_ranking
from portfolio.performance import PerformanceData
from portfolio.policies import K_GRID, POLICIES, WEIGHTINGS, NeighborParams, check_policy, rank_candidates

#: the baselines every evaluation reports, in report order
BASELINES: tuple[str, ...] = ("oracle", "single_best", "random", "metafeatures_knn")
DEFAULT_MATCHERS: tuple[str, ...] = ("kmeans", "mlp", "moments")
DEFAULT_POLICIES: tuple[str, ...] = ("incumbent", "neighbors", "single_best", "reduced")
DEFAULT_BATCH_SIZES: tuple[int, ...] = (8, 64, 512)
#: with two known datasets, holding one out leaves a single column of evidence: every method would trivially tie
MIN_DATASETS = 3
#: a method beats single_best on a dataset only when its expected score is higher by more than this
BEAT_EPS = 1e-9
#: novelty thresholds the build-time leave-one-out chooses from (ties: the highest, i.e. the fewest fallbacks)
THRESHOLD_GRID: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95, 0.99)

Picks = dict[str, float]  # candidate id -> probability of being recommended
Progress = Callable[[str], None]
Ranking = list[tuple[int, float]]  # (column, matcher score), best first


# ------------------------------------------------------------------------------------------ the problem


@dataclass(frozen=True)
class Problem:
    """What every method sees: scores at T, which row is whose incumbent, the reduced rows, the groups."""

    scores: np.ndarray
    configs: tuple[str, ...]
    datasets: tuple[str, ...]
    tuned_on: Mapping[int, int]  # row -> column of the dataset it was tuned on (its incumbent)
    reduced_rows: tuple[int, ...] = ()
    groups: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, data: PerformanceData, candidates: Sequence[Candidate] | None = None,
              reduced: Sequence[str] = (), groups: Mapping[str, str] | None = None,
              time_budget: float | None = None) -> Problem:
        """From performance data and candidates (default: rows named by datasets are their incumbents)."""
        m = data.matrix
        if len(m.datasets) < MIN_DATASETS or len(m.configs) < 2:
            raise ConfigError("datasets", len(m.datasets),
                              f"leave-one-out needs at least {MIN_DATASETS} known datasets and 2 candidates")
        try:
            scores, _ = data.scores_at(time_budget)
        except ValueError as exc:
            raise ConfigError("time_budget", time_budget, str(exc)) from None
        if candidates is None:
            tuned = {i: m.datasets.index(c) for i, c in enumerate(m.configs) if c in m.datasets}
        else:
            tuned = {i: m.datasets.index(c.dataset) for i, c in enumerate(candidates)
                     if c.source == "incumbent" and c.dataset in m.datasets}
        return cls(scores=scores, configs=m.configs, datasets=m.datasets, tuned_on=tuned,
                   reduced_rows=tuple(m.config_index(r) for r in reduced), groups=dict(groups or {}))

    def hidden(self, target: int, grouped: bool) -> set[int]:
        """Columns hidden when ``target`` is held out: itself, or its whole group."""
        if not grouped:
            return {target}
        group = self.groups.get(self.datasets[target], self.datasets[target])
        return {j for j, d in enumerate(self.datasets) if self.groups.get(d, d) == group}

    def rows(self, hidden: set[int]) -> list[int]:
        """Candidates allowed when ``hidden`` columns are unknown: not tuned on any of them."""
        return [i for i in range(len(self.configs)) if self.tuned_on.get(i) not in hidden]

    def columns(self, hidden: set[int]) -> list[int]:
        """Known columns."""
        return [j for j in range(len(self.datasets)) if j not in hidden]

    def incumbents(self) -> dict[int, int]:
        """Column -> row of its incumbent."""
        return {col: row for row, col in self.tuned_on.items()}

    def regret(self, score: float, target: int, rows: Sequence[int]) -> float:
        """Normalized regret of ``score`` on ``target`` among ``rows``."""
        column = self.scores[list(rows), target]
        best, worst = float(column.max()), float(column.min())
        return 0.0 if best - worst < 1e-12 else (best - score) / (best - worst)

    def pick(self, policy: str, rows: Sequence[int], cols: Sequence[int], ranking: Ranking,
             params: NeighborParams) -> int:
        """The top row of ``policy`` (falling back to single_best when the policy has no candidate)."""
        ranked = rank_candidates(policy, self.scores, rows, cols, ranking, params, self.incumbents(),
                                 self.reduced_rows)
        if not ranked:
            ranked = rank_candidates("single_best", self.scores, rows, cols, ranking, params)
        return ranked[0][0]


# ------------------------------------------------------------------------------------------ evidence


def knn_column(features: Mapping[str, np.ndarray], datasets: Sequence[str], target: int, cols: Sequence[int]) -> int:
    """The known column nearest to ``target`` in meta-features standardised over the known columns."""
    return metafeature_ranking({j: features[datasets[j]] for j in cols}, features[datasets[target]])[0][0]


@dataclass
class Evidence:
    """Per held-out column: the matcher's ranking of every random batch, and each batch's nearest distance."""

    rankings: dict[int, list[Ranking]] = field(default_factory=dict)
    nearest: dict[int, list[float]] = field(default_factory=dict)


#: k grid of the meta-feature neighbours: four coarse numbers tie many datasets, so wider neighbourhoods are offered
META_K_GRID: tuple[int, ...] = (*K_GRID, 13, 21)


def metafeature_evidence(problem: Problem, features: Mapping[str, np.ndarray], grouped: bool) -> Evidence:
    """Meta-features as a matcher: per held-out column, the known columns ranked by standardised meta-feature
    distance (:func:`portfolio.metaneighbors.metafeature_ranking`, as the recommender ranks them). One ranking
    per column (it does not depend on a batch of images)."""
    names = list(problem.datasets)
    out = Evidence()
    for target, name in enumerate(names):
        cols = problem.columns(problem.hidden(target, grouped))
        ranking = metafeature_ranking({j: features[names[j]] for j in cols}, features[name])
        out.rankings[target] = [[(j, score) for j, score, _ in ranking]]
        out.nearest[target] = [ranking[0][2]]
    return out


def collect_evidence(problem: Problem, fingerprints: Mapping[str, np.ndarray], matcher: str,
                     params: Mapping[str, Any], batch_sizes: Sequence[int], n_batches: int, seed: int,
                     grouped: bool, on_progress: Progress | None = None) -> dict[int, Evidence]:
    """Refit ``matcher`` without each held-out column's hidden set; rank random batches of it, per batch size."""
    names = list(problem.datasets)
    out: dict[int, Evidence] = {b: Evidence() for b in batch_sizes}
    fits: dict[frozenset[int], Any] = {}  # siblings hide the same set: one fit serves the whole group
    for target, name in enumerate(names):
        hidden = problem.hidden(target, grouped)
        known = problem.columns(hidden)
        fitted = fits.get(frozenset(hidden))
        if fitted is None:
            if on_progress is not None:
                on_progress(f"{matcher} without {name}"
                            + (f" and {len(hidden) - 1} sibling(s)" if len(hidden) > 1 else ""))
            x = np.concatenate([fingerprints[names[j]] for j in known])
            y = np.concatenate([np.repeat(names[j], len(fingerprints[names[j]])) for j in known])
            fitted = fits[frozenset(hidden)] = get_matcher(matcher, **params).fit(x, y)
        index = {names[j]: j for j in known}
        for size in batch_sizes:
            rng = np.random.default_rng([seed, size, target])
            batches, _ = draw_batches(fingerprints[name], size, n_batches, rng)
            out[size].rankings[target] = [[(index[d], s) for d, s in fitted.rank(b)] for b in batches]
            out[size].nearest[target] = [float(fitted.distance(b).min()) for b in batches]
    return out


# ------------------------------------------------------------------------------------------ results


@dataclass
class MethodResult:
    """One method's picks, expected scores and normalized regrets per held-out dataset."""

    picks: dict[str, Picks] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    regrets: dict[str, float] = field(default_factory=dict)

    @property
    def mean_regret(self) -> float:
        """Mean normalized regret over the held-out datasets."""
        return float(np.mean(list(self.regrets.values())))

    def record(self, problem: Problem, target: int, rows: Sequence[int], picked: Sequence[int]) -> None:
        """Store the rows picked for ``target`` (one per batch) with their expected score and regret."""
        name = problem.datasets[target]
        counts = Counter(problem.configs[r] for r in picked)
        self.picks[name] = {c: n / len(picked) for c, n in counts.most_common()}
        score = float(np.mean([problem.scores[r, target] for r in picked]))
        self.scores[name] = score
        self.regrets[name] = problem.regret(score, target, rows)


@dataclass
class RecommenderEval:
    """Every method's leave-one-out result; ``beats_single_best`` compares expected scores per dataset."""

    datasets: list[str]
    methods: dict[str, MethodResult]
    settings: dict[str, Any]
    novelty: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)  # dataset -> group (derivatives of one source)

    def beats_single_best(self, method: str) -> float:
        """Fraction of held-out datasets where ``method`` scores higher than single_best."""
        ref = self.methods["single_best"].scores
        own = self.methods[method].scores
        return float(np.mean([own[d] > ref[d] + BEAT_EPS for d in self.datasets]))

    def group_of(self, dataset: str) -> str:
        """The dataset's group (itself when it has none)."""
        return self.groups.get(dataset, dataset)

    def per_group(self, values: Mapping[str, float]) -> dict[str, float]:
        """Mean of per-dataset ``values`` over each group's datasets."""
        by: dict[str, list[float]] = {}
        for d in self.datasets:
            by.setdefault(self.group_of(d), []).append(values[d])
        return {g: float(np.mean(v)) for g, v in sorted(by.items())}

    def beats_single_best_groups(self, method: str) -> float:
        """Fraction of groups where ``method``'s mean score over the group beats single_best's."""
        ref = self.per_group(self.methods["single_best"].scores)
        own = self.per_group(self.methods[method].scores)
        return float(np.mean([own[g] > ref[g] + BEAT_EPS for g in ref]))

    def to_json(self) -> dict[str, Any]:
        """``{"methods": {NAME: {"mean_regret", "beats_single_best", "per_dataset", ...}}, "datasets", ...}``."""
        methods = {name: {"mean_regret": round(r.mean_regret, 4),
                          "beats_single_best": round(self.beats_single_best(name), 4),
                          "per_dataset": {d: round(r.regrets[d], 4) for d in self.datasets},
                          "mean_score": round(float(np.mean(list(r.scores.values()))), 4),
                          "per_dataset_score": {d: round(r.scores[d], 4) for d in self.datasets},
                          "picks": {d: {c: round(p, 4) for c, p in r.picks[d].items()} for d in self.datasets},
                          "beats_single_best_groups": round(self.beats_single_best_groups(name), 4),
                          "per_group": {g: round(v, 4) for g, v in self.per_group(r.regrets).items()}}
                   for name, r in self.methods.items()}
        return {"methods": methods, "datasets": self.datasets, "settings": self.settings,
                "grouped": bool(self.settings.get("grouped")), "novelty": self.novelty,
                "groups": {d: self.group_of(d) for d in self.datasets}}

    def table(self) -> str:
        """Plain-text summary: one row per method with mean regret, mean score and beats-single_best."""
        width = max(18, *(len(n) + 2 for n in self.methods))
        grouped = len(set(map(self.group_of, self.datasets))) < len(self.datasets)
        head = f"{'method':<{width}}{'mean regret':>12}{'mean score':>12}{'beats single_best':>19}" + (
            f"{'(groups)':>10}" if grouped else "")
        rows = [f"{name:<{width}}{r.mean_regret:>12.3f}{np.mean(list(r.scores.values())):>12.3f}"
                f"{self.beats_single_best(name):>19.2f}"
                + (f"{self.beats_single_best_groups(name):>10.2f}" if grouped else "")
                for name, r in self.methods.items()]
        return "\n".join([head, "-" * len(head), *rows])

    def per_group_table(self) -> str:
        """Plain-text mean regrets per group: methods as rows, groups as columns."""
        groups = sorted(set(map(self.group_of, self.datasets)))
        width = max(10, *(len(g) + 2 for g in groups))
        first = max(18, *(len(n) + 2 for n in self.methods))
        head = f"{'method':<{first}}" + "".join(f"{g:>{width}}" for g in groups)
        rows = [f"{name:<{first}}" + "".join(f"{v:>{width}.3f}" for v in self.per_group(r.regrets).values())
                for name, r in self.methods.items()]
        return "\n".join([head, "-" * len(head), *rows])

    def per_dataset_table(self) -> str:
        """Plain-text regrets: methods as rows, held-out datasets as columns."""
        width = max(10, *(len(d) + 2 for d in self.datasets))
        first = max(18, *(len(n) + 2 for n in self.methods))
        head = f"{'method':<{first}}" + "".join(f"{d:>{width}}" for d in self.datasets)
        rows = [f"{name:<{first}}" + "".join(f"{r.regrets[d]:>{width}.3f}" for d in self.datasets)
                for name, r in self.methods.items()]
        return "\n".join([head, "-" * len(head), *rows])


# ------------------------------------------------------------------------------------------ scoring


def policy_picks(problem: Problem, policy: str, params: NeighborParams, target: int, rows: Sequence[int],
                 cols: Sequence[int], rankings: Sequence[Ranking]) -> list[int]:
    """The row ``policy`` picks for each batch's ranking of ``target``."""
    return [problem.pick(policy, rows, cols, ranking, params) for ranking in rankings]


def mean_policy_regret(problem: Problem, evidence: Evidence, policy: str, params: NeighborParams, grouped: bool,
                       targets: Sequence[int] | None = None) -> float:
    """Mean normalized regret of ``policy`` with ``params`` over ``targets`` (default: every column)."""
    regrets = []
    for target in targets if targets is not None else sorted(evidence.rankings):
        hidden = problem.hidden(target, grouped)
        rows, cols = problem.rows(hidden), problem.columns(hidden)
        picked = policy_picks(problem, policy, params, target, rows, cols, evidence.rankings[target])
        regrets.append(problem.regret(float(np.mean([problem.scores[r, target] for r in picked])), target, rows))
    return float(np.mean(regrets))


def param_grid(n_known: int, k_grid: Sequence[int] = K_GRID) -> list[NeighborParams]:
    """Every (k, weighting) the inner leave-one-out tries (k capped at the number of known datasets)."""
    ks = sorted({min(k, n_known) for k in k_grid})
    return [NeighborParams(k=k, weighting=w) for w in WEIGHTINGS for k in ks]


def choose_params(problem: Problem, evidence: Evidence, grouped: bool, targets: Sequence[int] | None = None,
                  k_grid: Sequence[int] = K_GRID) -> tuple[NeighborParams, float]:
    """The (k, weighting) with the least mean regret of the neighbors policy over ``targets`` (default: every
    column; ties: grid order)."""
    grid, table = regret_table(problem, evidence, grouped, k_grid)
    return choose_from_table(grid, table, evidence, sorted(evidence.rankings) if targets is None else targets)


def regret_table(problem: Problem, evidence: Evidence, grouped: bool,
                 k_grid: Sequence[int] = K_GRID) -> tuple[list[NeighborParams], np.ndarray]:
    """The neighbors policy's regret on each held-out target (rows, in ``sorted(evidence.rankings)`` order)
    under each (k, weighting) of the grid (columns). A target's regret does not depend on which other targets
    it is averaged with, so the nested choice of every outer held-out set reads this one table
    (:func:`choose_from_table`) instead of recomputing every pick once per outer target."""
    grid = param_grid(len(problem.datasets) - 1, k_grid)
    table = np.empty((len(evidence.rankings), len(grid)))
    for i, target in enumerate(sorted(evidence.rankings)):
        hidden = problem.hidden(target, grouped)
        rows, cols = problem.rows(hidden), problem.columns(hidden)
        for j, params in enumerate(grid):
            picked = policy_picks(problem, "neighbors", params, target, rows, cols, evidence.rankings[target])
            table[i, j] = problem.regret(float(np.mean([problem.scores[r, target] for r in picked])), target, rows)
    return grid, table


def choose_from_table(grid: Sequence[NeighborParams], table: np.ndarray, evidence: Evidence,
                      targets: Sequence[int]) -> tuple[NeighborParams, float]:
    """:func:`choose_params` over ``targets`` from a :func:`regret_table` (the same answer, ties included)."""
    index = {t: i for i, t in enumerate(sorted(evidence.rankings))}
    rows = [index[t] for t in targets]
    scored = [(float(np.mean(list(table[rows, j]))), j) for j in range(len(grid))]
    regret, best = min(scored)
    return grid[best], regret


def novelty_of(reference: Sequence[float], distance: float) -> float:
    """Share of ``reference`` distances below ``distance`` (the conformal novelty of :mod:`portfolio.novelty`)."""
    ref = np.sort(np.asarray(reference))
    return float(np.searchsorted(ref, distance, side="left") / len(ref)) if len(ref) else 0.0


def evaluate_recommender(data: PerformanceData, summaries: Mapping[str, Mapping[str, Any]],
                         fingerprints: Mapping[str, np.ndarray] | None = None,
                         matchers: Sequence[str] = DEFAULT_MATCHERS,
                         params: Mapping[str, Mapping[str, Any]] | None = None,
                         batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, n_batches: int = 20, seed: int = 0,
                         policies: Sequence[str] = DEFAULT_POLICIES, candidates: Sequence[Candidate] | None = None,
                         reduced: Sequence[str] = (), groups: Mapping[str, str] | None = None, grouped: bool = False,
                         time_budget: float | None = None, novelty_threshold: float | None = None,
                         on_progress: Progress | None = None,
                         evidence_cache: dict[str, dict[int, Evidence]] | None = None,
                         features: Mapping[str, np.ndarray] | None = None) -> RecommenderEval:
    """Hold out every known dataset (or its group) in turn; score the baselines and each policy × matcher × batch.

    The ``neighbors`` policy's k and weighting are chosen, for each held-out dataset, by the same
    leave-one-out on the *other* datasets only (nested), so its numbers are not tuned on the answer.
    The matchers' rankings do not depend on the time budget: pass the same ``evidence_cache`` dict to
    evaluations at several budgets and the matchers are refitted once. ``features`` replaces the meta-feature
    vectors (default :func:`meta_features` of each summary), so other meta-features can be tried in one run.
    """
    for p in policies:
        check_policy(p)
    problem = Problem.build(data, candidates, reduced, groups, time_budget)
    datasets = list(problem.datasets)
    missing = sorted(set(datasets) - set(summaries))
    if missing:
        raise ConfigError("summaries", missing, "every known dataset needs a summary (for its meta-features)")
    for name in matchers:
        matcher_class(name)  # an unknown name fails here, before any work
    if matchers:
        if fingerprints is None or sorted(set(datasets) - set(fingerprints)):
            raise ConfigError("fingerprints", sorted(set(datasets) - set(fingerprints or {})),
                              "the matchers need fingerprints of every known dataset")
        if n_batches < 1 or not batch_sizes or min(batch_sizes) < 1:
            raise ConfigError("batches", (n_batches, list(batch_sizes)), "need n_batches >= 1 and batch sizes >= 1")
    methods: dict[str, MethodResult] = {name: MethodResult() for name in BASELINES}
    if features is not None and sorted(set(datasets) - set(features)):
        raise ConfigError("features", sorted(set(datasets) - set(features)), "every known dataset needs features")
    vectors = {d: np.asarray(features[d], dtype=float) if features is not None else meta_features(summaries[d])
               for d in datasets}
    flat = NeighborParams(k=1, weighting="uniform")
    for target in range(len(datasets)):
        hidden = problem.hidden(target, grouped)
        rows, cols = problem.rows(hidden), problem.columns(hidden)
        column = problem.scores[rows, target]
        methods["oracle"].record(problem, target, rows, [rows[int(np.argmax(column))]])
        methods["single_best"].record(problem, target, rows, [problem.pick("single_best", rows, cols, [], flat)])
        methods["random"].record(problem, target, rows, rows)
        knn = knn_column(vectors, datasets, target, cols)
        methods["metafeatures_knn"].record(problem, target, rows, [problem.pick("neighbors", rows, cols,
                                                                                [(knn, 1.0)], flat)])
    chosen: dict[str, dict[str, Any]] = {}
    novelty: dict[str, Any] = {}
    _policy_methods(methods, chosen, problem, metafeature_evidence(problem, vectors, grouped), "metafeatures",
                    policies, grouped, META_K_GRID)
    for name in matchers:
        key = f"{name}|{grouped}|{list(batch_sizes)}|{n_batches}|{seed}"
        if evidence_cache is not None and key in evidence_cache:
            evidence = evidence_cache[key]
        else:
            evidence = collect_evidence(problem, fingerprints or {}, name, (params or {}).get(name, {}), batch_sizes,
                                        n_batches, seed, grouped, on_progress)
            if evidence_cache is not None:
                evidence_cache[key] = evidence
        for size in batch_sizes:
            ev = evidence[size]
            _policy_methods(methods, chosen, problem, ev, f"{name}@{size}", policies, grouped, K_GRID)
            if novelty_threshold is not None and "neighbors" in policies:
                _fallback_method(methods, problem, ev, name, size, grouped, novelty_threshold, chosen)
        novelty[name] = novelty_report(problem, evidence, grouped)
    settings = {"matchers": list(matchers), "batch_sizes": list(batch_sizes), "n_batches": n_batches, "seed": seed,
                "params": {m: dict((params or {}).get(m, {})) for m in matchers}, "policies": list(policies),
                "grouped": grouped, "time_budget": time_budget if time_budget is not None else data.time_budget,
                "novelty_threshold": novelty_threshold, "neighbor_params": chosen}
    return RecommenderEval(datasets=datasets, methods=methods, settings=settings, novelty=novelty,
                           groups={d: str((groups or {}).get(d, d)) for d in datasets})


def metafeature_params(data: PerformanceData, summaries: Mapping[str, Mapping[str, Any]],
                       candidates: Sequence[Candidate] | None = None, groups: Mapping[str, str] | None = None,
                       ) -> tuple[NeighborParams, float, bool]:
    """The meta-feature neighbours' (k, weighting) for a portfolio, chosen as the evaluation chooses it: least
    mean leave-one-out regret over every known dataset, groups held out whole when datasets share a source.
    Returns (params, that regret, grouped)."""
    problem = Problem.build(data, candidates, (), groups)
    names = problem.datasets
    grouped = len({(groups or {}).get(d, d) for d in names}) < len(names)
    evidence = metafeature_evidence(problem, {d: meta_features(summaries[d]) for d in names}, grouped)
    params, regret = choose_params(problem, evidence, grouped, k_grid=META_K_GRID)
    return params, regret, grouped


def _policy_methods(methods: dict[str, MethodResult], chosen: dict[str, dict[str, Any]], problem: Problem,
                    ev: Evidence, label: str, policies: Sequence[str], grouped: bool, k_grid: Sequence[int]) -> None:
    """Record ``policy/label`` for every policy but single_best, from one evidence source; the neighbour
    parameters of each held-out dataset are chosen on the other datasets only (nested) and kept in ``chosen``."""
    datasets = problem.datasets
    flat = NeighborParams(k=1, weighting="uniform")
    nested = {}
    grid, table = regret_table(problem, ev, grouped, k_grid)
    for target in range(len(datasets)):
        others = [t for t in range(len(datasets)) if t not in problem.hidden(target, grouped)]
        nested[target] = choose_from_table(grid, table, ev, others)[0]
        chosen.setdefault(label, {})[datasets[target]] = nested[target].to_dict()
    for policy in policies:
        if policy == "single_best":
            continue  # a baseline: it does not look at the evidence
        result = methods.setdefault(f"{policy}/{label}", MethodResult())
        for target in range(len(datasets)):
            hidden = problem.hidden(target, grouped)
            rows, cols = problem.rows(hidden), problem.columns(hidden)
            nb = nested[target] if policy in ("neighbors", "reduced") else flat
            result.record(problem, target, rows, policy_picks(problem, policy, nb, target, rows, cols,
                                                               ev.rankings[target]))


def reference_distances(evidence: Evidence, exclude: set[int]) -> list[float]:
    """Nearest distances of every held-out batch except those of ``exclude``d columns."""
    return [d for t, ds in evidence.nearest.items() if t not in exclude for d in ds]


def _fallback_method(methods: dict[str, MethodResult], problem: Problem, ev: Evidence, name: str, size: int,
                     grouped: bool, threshold: float, chosen: dict[str, dict[str, Any]]) -> None:
    """``neighbors+fallback``: single_best whenever a batch's novelty is above ``threshold``."""
    result = methods.setdefault(f"neighbors+fallback/{name}@{size}", MethodResult())
    flat = NeighborParams(k=1, weighting="uniform")
    for target in range(len(problem.datasets)):
        hidden = problem.hidden(target, grouped)
        rows, cols = problem.rows(hidden), problem.columns(hidden)
        p = NeighborParams(**chosen[f"{name}@{size}"][problem.datasets[target]])
        ref = reference_distances(ev, hidden)
        picked = [problem.pick("single_best" if novelty_of(ref, d) > threshold else "neighbors", rows, cols,
                               ranking, p if novelty_of(ref, d) <= threshold else flat)
                  for ranking, d in zip(ev.rankings[target], ev.nearest[target], strict=True)]
        result.record(problem, target, rows, picked)


def novelty_report(problem: Problem, evidence: dict[int, Evidence], grouped: bool) -> dict[str, Any]:
    """Mean novelty of held-out batches per batch size; with groups, the AUROC of novelty for datasets whose
    whole group is unknown against the same datasets with their siblings known (needs a grouped run)."""
    out: dict[str, Any] = {}
    for size, ev in evidence.items():
        means = {problem.datasets[t]: float(np.mean([novelty_of(reference_distances(ev, problem.hidden(t, grouped)), d)
                                                    for d in ds])) for t, ds in ev.nearest.items()}
        out[str(size)] = {"mean_novelty": round(float(np.mean(list(means.values()))), 4),
                          "per_dataset": {k: round(v, 4) for k, v in means.items()}}
    return out


def novelty_auroc(novel: Sequence[float], known: Sequence[float]) -> float | None:
    """P(a novel score > a known score) + ½ P(tie): the AUROC of novelty as a detector (None if a side is empty)."""
    if not novel or not known:
        return None
    a, b = np.asarray(novel)[:, None], np.asarray(known)[None, :]
    return float((a > b).mean() + 0.5 * (a == b).mean())


def plot_regret(result: RecommenderEval, path: Path, title: str = "") -> Path:
    """Bar chart of mean normalized regret per method, with each held-out dataset's regret as a dot."""
    from metafeatures.figures import new_axes, save_figure

    names = list(result.methods)
    fig, ax = new_axes(title or f"leave-one-out over {len(result.datasets)} datasets",
                       "method", "normalized regret (0 = oracle, 1 = worst)")
    fig.set_size_inches(max(6.0, 0.32 * len(names) + 1.5), 4.8)
    colours = ["tab:gray" if n in BASELINES else "tab:blue" for n in names]
    ax.bar(range(len(names)), [result.methods[n].mean_regret for n in names], color=colours, alpha=0.6)
    markers = "ovs^Dp*hX"
    for k, dataset in enumerate(result.datasets[:9]):
        offsets = np.linspace(-0.25, 0.25, min(len(result.datasets), 9))[k]
        ax.scatter([i + offsets for i in range(len(names))], [result.methods[n].regrets[dataset] for n in names],
                   s=10, marker=markers[k % len(markers)], label=dataset, zorder=3)
    ax.set_xticks(range(len(names)), labels=names, rotation=70, ha="right", fontsize=6)
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="held out", title_fontsize=6)
    return save_figure(fig, path)


__all__ = ["BASELINES", "DEFAULT_POLICIES", "META_K_GRID", "POLICIES", "THRESHOLD_GRID", "Evidence", "MethodResult",
           "Problem", "RecommenderEval", "choose_from_table", "choose_params", "collect_evidence",
           "evaluate_recommender", "mean_policy_regret", "meta_features", "metafeature_evidence",
           "metafeature_params", "novelty_auroc", "plot_regret", "regret_table"]
