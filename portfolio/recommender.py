"""Recommend fine-tuning configurations for a new dataset: the one entry point behind REST, CLI, Python and eval.

A batch of the dataset's fingerprints goes to the portfolio's matcher, which ranks the known datasets
(``rank``) and measures how far the batch is from each (``distance``, for novelty). A selection policy
(:mod:`portfolio.policies`) then ranks every candidate configuration by its predicted score (ALC at the
user's time budget, from the stored learning curves), after dropping candidates that break the user's
limits (parameters, FLOPs, latency). When the batch looks like nothing known (novelty above the
portfolio's threshold) the robust choice, the single best candidate, is served instead and the answer
says so. :func:`recommend_dataset` adds the fingerprinting in front: load → fingerprint → recommend.

``evidence="metafeatures"`` ranks the known datasets by the dataset's meta-features (classes, images,
resolution, channels; :mod:`portfolio.metaneighbors`) instead of by its fingerprints — the best predictor
measured on the shipped portfolio at T = 1200 s (docs/evaluation.md). It needs the dataset's summary, so it
works for dataset folders and registered datasets, not for a bare batch of images; novelty is still measured
on the fingerprints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from metafeatures.errors import ConfigError, MetarecError
from portfolio.artifact import LoadedPortfolio
from portfolio.candidates import Candidate, Cost
from portfolio.metaneighbors import meta_features, metafeature_ranking
from portfolio.policies import POLICIES, NeighborParams, Ranked, check_policy, rank_candidates

if TYPE_CHECKING:
    from metafeatures.datasets import Dataset
    from metafeatures.fingerprint import Fingerprinter

#: the longest time budget a request may ask for (a week): anything longer is a mistake, not a plan
MAX_TIME_BUDGET_S = 7 * 24 * 3600.0
PolicyName = Literal["incumbent", "neighbors", "single_best", "reduced"]
EvidenceName = Literal["fingerprints", "metafeatures"]
EVIDENCE_HELP = ("what ranks the known datasets: 'fingerprints' (the matcher, from images) or 'metafeatures' "
                 "(classes, images, resolution, channels: needs the dataset's summary, so not for an uploaded batch)")


class NoCandidateError(MetarecError):
    """Every candidate breaks the request's limits; names the cheapest candidate's cost (REST: 422)."""

    def __init__(self, message: str, cheapest: dict[str, Any]) -> None:
        super().__init__(message)
        self.cheapest = cheapest


class SelectionRequest(BaseModel):
    """What the user asks for beyond the dataset: policy, time budget, limits and how many candidates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: PolicyName | None = Field(default=None, description="default: the portfolio's calibrated policy")
    time_budget_s: Annotated[float, Field(gt=0, le=MAX_TIME_BUDGET_S, allow_inf_nan=False)] | None = Field(
        default=None, description="rank by ALC at this T (seconds); default: the portfolio's own T")
    max_params: Annotated[int, Field(ge=1, le=10**12)] | None = None
    max_flops: Annotated[int, Field(ge=1, le=10**16)] | None = None
    max_latency_ms: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] | None = None
    top_k: Annotated[int, Field(ge=1, le=100)] = 5
    reduced: bool = Field(default=False, description="legacy switch: the same as policy=reduced")
    evidence: EvidenceName = Field(default="fingerprints", description=EVIDENCE_HELP)

    def limits(self) -> dict[str, float]:
        """The limits that are set, by name."""
        return {k: v for k in ("max_params", "max_flops", "max_latency_ms") if (v := getattr(self, k)) is not None}


class Neighbor(BaseModel):
    """A known dataset, the evidence's score for it and the distance to it (in fingerprint space for the
    matcher, in standardised meta-features for ``evidence="metafeatures"``)."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    distance: float | None = None


class RankedCandidate(BaseModel):
    """One candidate of the answer: its configuration, predicted ALC at the budget, origin and cost."""

    model_config = ConfigDict(frozen=True)

    id: str
    configuration: dict[str, Any]
    predicted_score: float = Field(description="the predicted ALC at the budget: the policy's weighted average "
                                               "of the candidate's raw ALC on the evidence datasets")
    rank_score: float = Field(description="what the policy ranks by (candidates are listed by it, best first): "
                                          "neighbors/reduced: the weighted mean of the per-dataset normalised "
                                          "score (0 = worst candidate on a neighbour, 1 = best); single_best: "
                                          "the mean ALC; incumbent: the neighbour's match score")
    source: str
    dataset: str | None = None
    cost: Cost | None = None
    extrapolated: bool = Field(description="the budget is longer than the runs the prediction is based on; "
                                           "their last score is held")


class Fallback(BaseModel):
    """Whether the robust choice replaced the policy's answer, and why."""

    model_config = ConfigDict(frozen=True)

    used: bool
    reason: str = ""


class Recommendation(BaseModel):
    """The recommended configuration (the top candidate) with the evidence and the alternatives."""

    model_config = ConfigDict(frozen=True)

    configuration: dict[str, Any]
    neighbors: list[Neighbor]
    best_match: str
    incumbent_of: str
    portfolio_version: str
    matcher: str
    evidence: EvidenceName = Field(default="fingerprints", description="what ranked the known datasets "
                                                                        "(neighbors); novelty is always "
                                                                        "measured on the fingerprints")
    fingerprint_spec: dict[str, Any]
    restricted_to_reduced: bool
    policy: str
    time_budget_s: float
    time_budget_requested: bool = Field(default=False, description="the request named time_budget_s (else the "
                                                                    "portfolio's own T is used)")
    candidates: list[RankedCandidate]
    novelty: float | None = Field(description="0 = like a known dataset, 1 = further from every known dataset "
                                              "than any known dataset was from the others; None: uncalibrated")
    nearest_distance: float
    fallback: Fallback
    limits: dict[str, float] = {}


def parse_request(fields: dict[str, Any]) -> SelectionRequest:
    """A SelectionRequest from keyword fields; ConfigError naming the first bad field."""
    try:
        return SelectionRequest.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ())) or "request"
        raise ConfigError(loc, err.get("input"), err.get("msg", "invalid value")) from None


class Recommender:
    """Turns a batch of fingerprints into ranked configurations using one matcher of a loaded portfolio."""

    def __init__(self, loaded_portfolio: LoadedPortfolio, matcher: str = "mlp") -> None:
        available = sorted(loaded_portfolio.matchers)
        if matcher not in loaded_portfolio.matchers:
            raise ConfigError("matcher", matcher, f"not in portfolio {loaded_portfolio.version}; "
                                                  f"available: {', '.join(available)}")
        self.portfolio = loaded_portfolio
        self.matcher_name = matcher
        self.matcher = loaded_portfolio.matchers[matcher]
        self._meta_params: NeighborParams | None = None

    def metafeature_params(self) -> NeighborParams:
        """The meta-feature neighbours' k and weighting: the portfolio's calibration if it has one, else chosen
        once (and kept) by the evaluation's leave-one-(group-)out on the portfolio's own matrix."""
        calibrated = self.portfolio.selection.neighbors.get("metafeatures")
        if calibrated is not None:
            return calibrated
        if self._meta_params is None:
            from portfolio.evaluation import MIN_DATASETS, metafeature_params

            p = self.portfolio
            if len(p.matrix.datasets) < MIN_DATASETS:
                self._meta_params = NeighborParams()
            else:
                entries = p.portfolio.entries
                self._meta_params = metafeature_params(
                    p.performance, {e.dataset: e.summary for e in entries}, p.candidates,
                    {e.dataset: str(e.summary.get("group") or e.dataset) for e in entries})[0]
        return self._meta_params

    def metafeature_ranking(self, summary: Mapping[str, Any]) -> list[tuple[str, float, float]]:
        """Known datasets ranked by meta-feature distance to ``summary``: (name, score, distance)."""
        try:
            target = meta_features(summary)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError("summary", type(summary).__name__,
                              f"needs n_classes, n_items, mean_height, mean_width and channels ({exc})") from None
        known = {e.dataset: meta_features(e.summary) for e in self.portfolio.portfolio.entries}
        return metafeature_ranking(known, target)

    @property
    def feature_dim(self) -> int:
        """Width of the fingerprints this recommender expects (the portfolio's fingerprint spec)."""
        return self.portfolio.fingerprint_spec.feature_dim

    def _batch(self, features: np.ndarray) -> np.ndarray:
        """Check a batch (N, D) or one fingerprint (D,): numeric, finite, non-empty, of the spec's width."""
        batch = np.asarray(features)
        if batch.ndim == 1:
            batch = batch.reshape(1, -1)
        if batch.ndim != 2:
            raise ValueError(f"features must be (n_samples, {self.feature_dim}) or ({self.feature_dim},), "
                             f"got shape {np.shape(features)}")
        if batch.shape[1] != self.feature_dim:
            raise ValueError(f"features have dimension {batch.shape[1]}, expected {self.feature_dim} "
                             f"(fingerprint spec of portfolio {self.portfolio.version})")
        if batch.shape[0] == 0:
            raise ValueError("features: the batch is empty")
        if not np.issubdtype(batch.dtype, np.number) or np.issubdtype(batch.dtype, np.complexfloating):
            raise ValueError(f"features must be real numbers, got dtype {batch.dtype}")
        batch = batch.astype(np.float64, copy=False)
        if not np.isfinite(batch).all():
            raise ValueError("features contain NaN or infinite values")
        return batch

    def allowed_rows(self, request: SelectionRequest) -> list[int]:
        """Rows of the candidates within the request's limits; NoCandidateError naming the cheapest if none."""
        limits = request.limits()
        cands = self.portfolio.candidates
        if not limits:
            return list(range(len(cands)))
        costed = [(i, c.cost) for i, c in enumerate(cands) if c.cost is not None]
        if not costed:
            raise ConfigError("limits", limits, f"portfolio {self.portfolio.version} records no candidate costs, "
                                                "so limits cannot be checked")
        keys = {"max_params": "params", "max_flops": "flops", "max_latency_ms": "latency_ms"}
        rows = [i for i, cost in costed if all(getattr(cost, keys[k]) <= v for k, v in limits.items())]
        if rows:
            return rows
        cheapest_i, cheapest = min(costed, key=lambda ic: tuple(getattr(ic[1], keys[k]) / v
                                                                for k, v in limits.items()))
        info = {"candidate": cands[cheapest_i].id, **cheapest.model_dump(mode="json")}
        raise NoCandidateError(f"no candidate meets the limits {limits}; the cheapest is {cands[cheapest_i].id!r} "
                               f"with {cheapest.params} parameters, {cheapest.flops} FLOPs, "
                               f"{cheapest.latency_ms} ms per image on {cheapest.device}", info)

    def recommend(self, features: np.ndarray, request: SelectionRequest | None = None,
                  summary: Mapping[str, Any] | None = None, **fields: Any) -> Recommendation:
        """Rank the candidates for the batch under ``request`` (or the same fields as keywords); ``summary``
        (the dataset's DatasetSummary as a dict) is needed for ``evidence="metafeatures"``."""
        if request is None:
            request = parse_request(fields)
        elif fields:
            raise TypeError("give either a SelectionRequest or keyword fields, not both")
        batch = self._batch(features)
        p = self.portfolio
        matrix = p.matrix
        settings = p.selection
        ranking = self.matcher.rank(batch)
        distances = dict(zip([str(c) for c in self.matcher.classes_], self.matcher.distance(batch).tolist(),
                             strict=True))
        nearest = float(min(distances.values()))
        params = settings.params_for(self.matcher_name, len(matrix.datasets))
        if request.evidence == "metafeatures":
            if summary is None:
                raise ConfigError("evidence", "metafeatures", "needs the dataset's summary (classes, images, "
                                  "resolution, channels): recommend for a dataset folder or a registered dataset; "
                                  "an uploaded batch of images has none")
            meta = self.metafeature_ranking(summary)
            ranking = [(name, score) for name, score, _ in meta]
            distances = {name: distance for name, _, distance in meta}
            mp = self.metafeature_params()
            params = NeighborParams(k=max(1, min(mp.k, len(matrix.datasets))), weighting=mp.weighting)
        novelty = settings.novelty.novelty(nearest, len(batch)) if settings.novelty is not None else None
        policy = check_policy(request.policy or ("reduced" if request.reduced else settings.default_policy))
        try:
            scores, extrapolated = p.performance.scores_at(request.time_budget_s)
        except ValueError as exc:
            raise ConfigError("time_budget_s", request.time_budget_s, str(exc)) from None
        rows = self.allowed_rows(request)
        columns = list(range(len(matrix.datasets)))
        col_ranking = [(matrix.dataset_index(name), score) for name, score in ranking]
        incumbents = {matrix.dataset_index(c.dataset): i for i, c in enumerate(p.candidates)
                      if c.source == "incumbent" and c.dataset in matrix.datasets}
        reduced = [matrix.config_index(m) for m in p.portfolio.reduced_portfolio]
        fallback = Fallback(used=False)
        used = policy
        if novelty is not None and settings.novelty is not None and settings.novelty.is_novel(novelty) \
                and policy != "single_best":
            used = "single_best"
            fallback = Fallback(used=True, reason=f"novelty {novelty:.2f} is above the portfolio's threshold "
                                f"{settings.novelty.threshold:.2f}: no known dataset is similar enough, so the "
                                "single best candidate over all known datasets is served")
        ranked = rank_candidates(used, scores, rows, columns, col_ranking, params, incumbents, reduced)
        if not ranked:  # e.g. `incumbent` when every neighbour's incumbent breaks a limit
            ranked = rank_candidates("single_best", scores, rows, columns, col_ranking, params)
            fallback = Fallback(used=True, reason=f"the {policy} policy has no candidate here (no neighbour's "
                                                  "incumbent is among the candidates within the limits); the "
                                                  "single best candidate is served")
        return self._answer(request, ranking, distances, nearest, novelty, policy, fallback, ranked,
                            extrapolated, scores)

    def _answer(self, request: SelectionRequest, ranking: list[tuple[str, float]], distances: dict[str, float],
                nearest: float, novelty: float | None, policy: str, fallback: Fallback,
                ranked: list[Ranked], extrapolated: np.ndarray, scores: np.ndarray) -> Recommendation:
        """Assemble the response from the ranked rows."""
        p = self.portfolio
        cands: list[Candidate] = p.candidates
        out = []
        for row, predicted, key in ranked[: request.top_k]:
            c = cands[row]
            out.append(RankedCandidate(id=c.id, configuration=c.configuration, predicted_score=round(predicted, 6),
                                       rank_score=round(key, 6), source=c.source, dataset=c.dataset, cost=c.cost,
                                       extrapolated=bool(extrapolated[row].any())))
        top = out[0]
        budget = request.time_budget_s if request.time_budget_s is not None else p.performance.time_budget
        neighbors = [Neighbor(dataset=name, score=min(max(score, 0.0), 1.0), distance=round(distances[name], 6))
                     for name, score in ranking[: request.top_k]]
        return Recommendation(
            configuration=top.configuration, neighbors=neighbors, best_match=ranking[0][0],
            incumbent_of=top.dataset or top.id, portfolio_version=p.version, matcher=self.matcher_name,
            evidence=request.evidence,
            fingerprint_spec=p.fingerprint_spec.to_dict(), restricted_to_reduced=policy == "reduced",
            policy=policy, time_budget_s=float(budget), time_budget_requested=request.time_budget_s is not None,
            candidates=out,
            novelty=None if novelty is None else round(novelty, 4),
            nearest_distance=round(nearest, 6) if math.isfinite(nearest) else nearest,
            fallback=fallback, limits=request.limits())


def recommend_dataset(recommender: Recommender, fingerprinter: Fingerprinter, dataset: Dataset,
                      request: SelectionRequest, *, n_samples: int = 64, seed: int = 0, use_cache: bool = True,
                      progress: bool = False, content_hash: str | None = None,
                      embed: Any = None, summary: Mapping[str, Any] | None = None) -> tuple[Recommendation, int]:
    """Fingerprint ``dataset`` under the portfolio's spec and recommend: (recommendation, n_fingerprints).

    The REST route passes its batcher's ``embed`` (one inference thread for all requests); the CLI, the
    Python API and the evaluation harness use the fingerprinter's own forward pass. ``summary`` (the service
    keeps one per registered dataset) saves summarising the dataset again for ``evidence="metafeatures"``.
    """
    from metafeatures.summary import content_hash as hash_of

    fp = fingerprinter.fingerprint(dataset, content_hash or hash_of(dataset), n_samples=n_samples, seed=seed,
                                   use_cache=use_cache, progress=progress,
                                   **({"embed": embed} if embed is not None else {}))
    if request.evidence == "metafeatures" and summary is None:
        from metafeatures.summary import summarize

        summary = summarize(dataset).model_dump(mode="json")
    return recommender.recommend(fp.features, request, summary), len(fp.features)


__all__ = ["EVIDENCE_HELP", "POLICIES", "EvidenceName", "Fallback", "Neighbor", "NoCandidateError", "RankedCandidate",
           "Recommendation", "Recommender", "SelectionRequest", "parse_request", "recommend_dataset"]
