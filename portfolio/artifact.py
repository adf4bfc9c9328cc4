"""The portfolio artifact: a versioned directory holding ``portfolio.json``, one file per matcher and figures.

``portfolio.json`` carries the format version, a content-derived version string, the fingerprint spec
every matcher was fitted under, the search space, one entry per known dataset (summary, incumbent
configuration, its score and budget), the candidates (every configuration with performance data, with its
cost), the performance matrix (candidates × datasets) and, when recorded, each cell's learning curve, the
greedy reduced portfolio and its curve, the selection settings (default policy, neighbour weighting,
novelty calibration), the matcher file names and provenance. :func:`load_portfolio` checks every part against every
other part and refuses any mismatch with an :class:`~metafeatures.errors.ArtifactError` that names the
file and the problem; :func:`save_portfolio` runs the same checks first, so a saved portfolio loads.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finetune.config import FinetuneConfig
from finetune.space import space_from_dict, space_to_dict
from metafeatures.errors import ArtifactError, ConfigError, OutputExistsError, SpecMismatchError
from metafeatures.fingerprint import FingerprintSpec
from metafeatures.matchers import load_matcher, save_matcher
from metafeatures.matchers.registry import list_matchers, matcher_name
from metafeatures.summary import DatasetSummary
from portfolio.candidates import Candidate, incumbent_candidates
from portfolio.performance import PerformanceData
from portfolio.policies import SelectionSettings
from portfolio.selection import PerformanceMatrix, PortfolioStep, choose_reduced, greedy_reduced_portfolio

if TYPE_CHECKING:
    from ConfigSpace import ConfigurationSpace

    from metafeatures.matchers._base import BaseMatcher

#: 2: rectangular candidates × datasets matrix, candidates with costs, learning curves, selection settings
PORTFOLIO_FORMAT_VERSION = 2
PORTFOLIO_FILE = "portfolio.json"
MATRIX_FIGURE = "performance_matrix.png"
CURVE_FIGURE = "portfolio_curve.png"
BUDGET_KINDS: tuple[str, ...] = ("epochs", "seconds")
PROVENANCE_KEYS: tuple[str, ...] = ("dataset_hashes", "scenario", "metarec_version", "created_at")
#: "<prefix>-<YYYY.MM.DD>-<first 8 hex digits of the content hash>", e.g. "demo-2026.11.22-1a2b3c4d"
VERSION_PATTERN = re.compile(
    r"^(?P<prefix>[A-Za-z0-9][A-Za-z0-9_.-]*)-(?P<date>\d{4}\.\d{2}\.\d{2})-(?P<hash>[0-9a-f]{8})$"
)
_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MATCHER_FILE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.npz$")
_CURVE_ATOL = 1e-9


class PortfolioSpecMismatchError(SpecMismatchError):
    """A portfolio's matcher file was fitted under another fingerprint spec than the portfolio's; names the file."""

    def __init__(self, path: str | Path, expected: dict, got: dict) -> None:
        super().__init__(expected, got)
        self.path = str(path)
        self.args = (f"{self.path}: {self.args[0]}",)


class PortfolioEntry(BaseModel):
    """One known dataset: its summary, its incumbent configuration and the score/budget that found it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: Annotated[str, Field(min_length=1)]
    summary: dict[str, Any]
    configuration: dict[str, Any]
    score: Annotated[float, Field(allow_inf_nan=False)]
    budget: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    budget_kind: Literal["epochs", "seconds"]

    @classmethod
    def from_objects(cls, summary: DatasetSummary, config: FinetuneConfig, score: float, budget: float,
                     budget_kind: str) -> PortfolioEntry:
        """Build an entry from a DatasetSummary and a FinetuneConfig (named by the summary's dataset)."""
        return cls(dataset=summary.name, summary=summary.model_dump(mode="json"), configuration=config.to_dict(),
                   score=score, budget=budget, budget_kind=budget_kind)  # type: ignore[arg-type]


class Portfolio(BaseModel):
    """Everything ``portfolio.json`` holds; see the module docstring. Consistency is checked by check_portfolio."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = PORTFOLIO_FORMAT_VERSION
    version: str = ""
    fingerprint_spec: dict[str, Any]
    config_space: dict[str, Any]
    entries: list[PortfolioEntry]
    candidates: list[Candidate]
    performance_matrix: dict[str, Any]
    curves: dict[str, Any] | None = None
    reduced_portfolio: list[str]
    reduced_portfolio_curve: list[dict[str, Any]]
    selection: dict[str, Any]
    matchers: dict[str, str]
    provenance: dict[str, Any]

    @property
    def datasets(self) -> list[str]:
        """Names of the known datasets, in entry order."""
        return [e.dataset for e in self.entries]

    def entry(self, dataset: str) -> PortfolioEntry:
        """The entry of ``dataset``; KeyError naming the known datasets if absent."""
        for e in self.entries:
            if e.dataset == dataset:
                return e
        raise KeyError(f"no portfolio entry for {dataset!r}; datasets: {', '.join(self.datasets)}")

    def matrix(self) -> PerformanceMatrix:
        """The performance matrix as a :class:`PerformanceMatrix`."""
        return PerformanceMatrix.from_dict(self.performance_matrix)

    def curve(self) -> list[PortfolioStep]:
        """The stored greedy reduced-portfolio curve as :class:`PortfolioStep` objects."""
        return [PortfolioStep.from_dict(step) for step in self.reduced_portfolio_curve]

    def content_hash(self) -> str:
        """sha256 of the canonical JSON of everything but ``version``: the version string's last part."""
        body = self.model_dump(mode="json", exclude={"version"})
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def with_version(self, prefix: str = "demo", date: str | None = None) -> Portfolio:
        """A copy whose version is ``<prefix>-<date>-<8 hex of content_hash>`` (date: YYYY.MM.DD, default today)."""
        if not isinstance(prefix, str) or not _PREFIX_PATTERN.match(prefix):
            raise ConfigError("version_prefix", prefix, "use letters, digits, '_', '.', '-' (starting alphanumeric)")
        if date is None:
            date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y.%m.%d")
        version = f"{prefix}-{date}-{self.content_hash()[:8]}"
        if not VERSION_PATTERN.match(version):
            raise ConfigError("date", date, "expected YYYY.MM.DD")
        return self.model_copy(update={"version": version})


@dataclass(frozen=True)
class LoadedPortfolio:
    """A portfolio read and fully checked by :func:`load_portfolio`, with its matchers and parsed parts."""

    directory: Path
    portfolio: Portfolio
    matchers: dict[str, BaseMatcher]
    matrix: PerformanceMatrix
    space: ConfigurationSpace
    fingerprint_spec: FingerprintSpec
    configs: dict[str, FinetuneConfig]
    performance: PerformanceData
    selection: SelectionSettings

    @property
    def candidates(self) -> list[Candidate]:
        """Every recommendable configuration, in matrix-row order."""
        return list(self.portfolio.candidates)

    @property
    def version(self) -> str:
        """The portfolio's version string."""
        return self.portfolio.version

    def configuration(self, dataset: str) -> FinetuneConfig:
        """The incumbent configuration of a known dataset; KeyError naming the known datasets if absent."""
        try:
            return self.configs[dataset]
        except KeyError:
            raise KeyError(f"no portfolio entry for {dataset!r}; datasets: {', '.join(self.configs)}") from None


def matcher_file_name(name: str) -> str:
    """File name a matcher registered in a portfolio under ``name`` is saved as: ``matcher-<name>.npz``."""
    file_name = f"matcher-{name}.npz"
    if not _MATCHER_FILE_PATTERN.match(file_name):
        raise ConfigError("matcher", name, "matcher names use letters, digits, '_', '.', '-'")
    return file_name


# ------------------------------------------------------------------------------------------ checks


def _pydantic_problem(exc: ValidationError) -> str:
    """pydantic's first error as 'field.path: message'."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
    return f"{loc}: {err.get('msg', 'invalid value')}"


def _names_diff(what: str, have: Iterable[str], want: Iterable[str], noun: str = "entry dataset") -> str | None:
    """None if ``have`` and ``want`` hold the same names, else a sentence saying which ``noun``s are missing / extra."""
    have_set, want_set = set(have), set(want)
    if have_set == want_set:
        return None
    parts = []
    if want_set - have_set:
        parts.append(f"lacks {noun}(s) {', '.join(sorted(want_set - have_set))}")
    if have_set - want_set:
        parts.append(f"has name(s) that are not {noun}s: {', '.join(sorted(have_set - want_set))}")
    return f"{what} " + " and ".join(parts)


def _check_content(p: Portfolio, where: str) -> tuple[PerformanceData, ConfigurationSpace, FingerprintSpec,
                                                      dict[str, FinetuneConfig], SelectionSettings]:
    """Check every part of ``p`` except the matchers' files and the version; return the parsed parts."""

    def fail(problem: str) -> ArtifactError:
        return ArtifactError(f"{where}: {problem}")

    if p.format_version != PORTFOLIO_FORMAT_VERSION:
        raise fail(f"unsupported portfolio format_version {p.format_version!r} "
                   f"(this metarec reads {PORTFOLIO_FORMAT_VERSION})")
    # fingerprint spec: valid and canonical (matchers are compared against it verbatim)
    try:
        spec = FingerprintSpec.from_dict(p.fingerprint_spec)
    except (ArtifactError, ValueError, TypeError) as exc:
        raise fail(f"fingerprint_spec: {exc}") from exc
    if spec.to_dict() != p.fingerprint_spec:
        raise fail(f"fingerprint_spec is not in canonical form (expected {spec.to_dict()!r})")
    # search space
    try:
        space = space_from_dict(p.config_space)
    except ArtifactError as exc:
        raise fail(f"config_space: {exc}") from exc
    # entries
    if not p.entries:
        raise fail("a portfolio needs at least one entry")
    datasets = p.datasets
    duplicates = sorted({d for d in datasets if datasets.count(d) > 1})
    if duplicates:
        raise fail(f"duplicate entry dataset(s): {', '.join(duplicates)}")
    configs: dict[str, FinetuneConfig] = {}
    for entry in p.entries:
        label = f"entry {entry.dataset!r}"
        try:
            summary = DatasetSummary.model_validate(entry.summary)
        except ValidationError as exc:
            raise fail(f"{label}: summary is not a DatasetSummary ({_pydantic_problem(exc)})") from exc
        if summary.name != entry.dataset:
            raise fail(f"{label}: summary describes dataset {summary.name!r}")
        try:
            config = FinetuneConfig.from_dict(entry.configuration)
        except ConfigError as exc:
            raise fail(f"{label}: configuration: {exc}") from exc
        if config.to_dict() != entry.configuration:
            raise fail(f"{label}: configuration is not in FinetuneConfig.to_dict() form")
        try:
            config.to_configuration(space)
        except ConfigError as exc:
            raise fail(f"{label}: configuration is not in the portfolio's config_space: {exc}") from exc
        configs[entry.dataset] = config
    # performance matrix
    try:
        matrix = PerformanceMatrix.from_dict(p.performance_matrix)
    except ArtifactError as exc:
        raise fail(str(exc)) from exc
    problem = _names_diff("performance matrix datasets", matrix.datasets, datasets)
    if problem:
        raise fail(problem)
    ids = [c.id for c in p.candidates]
    if len(set(ids)) != len(ids):
        raise fail(f"duplicate candidate id(s): {', '.join(sorted({i for i in ids if ids.count(i) > 1}))}")
    if tuple(ids) != matrix.configs:
        raise fail("the performance matrix's rows must be the candidates, in candidate order "
                   f"(candidates {ids}, rows {list(matrix.configs)})")
    for cand in p.candidates:
        try:
            config = cand.config()
        except ConfigError as exc:
            raise fail(f"candidate {cand.id!r}: configuration: {exc}") from exc
        if config.to_dict() != cand.configuration:
            raise fail(f"candidate {cand.id!r}: configuration is not in FinetuneConfig.to_dict() form")
        if cand.source == "incumbent" and (cand.dataset not in configs or configs[cand.dataset] != config):
            raise fail(f"candidate {cand.id!r}: says it is the incumbent of {cand.dataset!r}, which it is not")
    try:
        performance = PerformanceData.from_parts(matrix, p.curves)
    except ArtifactError as exc:
        raise fail(str(exc)) from exc
    try:
        selection = SelectionSettings.from_dict(p.selection)
    except ArtifactError as exc:
        raise fail(str(exc)) from exc
    # reduced portfolio and its curve
    if not p.reduced_portfolio:
        raise fail("reduced_portfolio is empty")
    if len(set(p.reduced_portfolio)) != len(p.reduced_portfolio):
        raise fail(f"reduced_portfolio has duplicates: {p.reduced_portfolio}")
    unknown = [m for m in p.reduced_portfolio if m not in ids]
    if unknown:
        raise fail(f"reduced_portfolio member(s) {', '.join(map(repr, unknown))} are not candidates")
    if not p.reduced_portfolio_curve:
        raise fail("reduced_portfolio_curve is empty")
    try:
        curve = p.curve()
    except ArtifactError as exc:
        raise fail(f"reduced_portfolio_curve: {exc}") from exc
    expected_curve = greedy_reduced_portfolio(matrix, max_size=len(curve))
    if len(expected_curve) != len(curve):
        raise fail(f"reduced_portfolio_curve has {len(curve)} steps but there are only {len(expected_curve)} configs")
    for got, want in zip(curve, expected_curve, strict=True):
        same = (got.size, got.members, got.added) == (want.size, want.members, want.added) and all(
            math.isclose(a, b, rel_tol=0.0, abs_tol=_CURVE_ATOL)
            for a, b in ((got.score, want.score), (got.min, want.min), (got.mean, want.mean)))
        if not same:
            raise fail(f"reduced_portfolio_curve step {got.size} {got.to_dict()!r} does not match the greedy "
                       f"selection on the performance matrix ({want.to_dict()!r})")
    # matcher file names
    if not p.matchers:
        raise fail("a portfolio needs at least one matcher")
    files = list(p.matchers.values())
    for name, file_name in p.matchers.items():
        if not _MATCHER_FILE_PATTERN.match(file_name):
            raise fail(f"matcher {name!r}: file name {file_name!r} must be a plain '<name>.npz' inside the directory")
    if len(set(files)) != len(files):
        raise fail(f"two matchers share a file: {p.matchers}")
    # provenance
    missing = [k for k in PROVENANCE_KEYS if k not in p.provenance]
    if missing:
        raise fail(f"provenance lacks key(s) {', '.join(missing)}")
    hashes = p.provenance["dataset_hashes"]
    if not isinstance(hashes, dict):
        raise fail("provenance.dataset_hashes must be a mapping of dataset name to content hash")
    problem = _names_diff("provenance.dataset_hashes", hashes, datasets)
    if problem:
        raise fail(problem)
    for entry in p.entries:
        if hashes[entry.dataset] != entry.summary.get("content_hash"):
            raise fail(f"entry {entry.dataset!r}: provenance.dataset_hashes says {hashes[entry.dataset]!r} but the "
                       f"summary's content_hash is {entry.summary.get('content_hash')!r}")
    for key in ("metarec_version", "created_at"):
        if not isinstance(p.provenance[key], str) or not p.provenance[key]:
            raise fail(f"provenance.{key} must be a non-empty string")
    try:
        _dt.datetime.fromisoformat(p.provenance["created_at"])
    except ValueError as exc:
        raise fail(f"provenance.created_at is not an ISO date-time: {exc}") from exc
    return performance, space, spec, configs, selection


def _check_matchers(p: Portfolio, matchers: Mapping[str, BaseMatcher], spec: FingerprintSpec, where: str,
                    files: Mapping[str, Path] | None = None) -> None:
    """Check that ``matchers`` are exactly the portfolio's, know exactly its datasets and take its feature width."""
    problem = _names_diff("matchers", matchers, p.matchers, noun="portfolio matcher")
    if problem:
        raise ArtifactError(f"{where}: {problem}")
    datasets = p.datasets
    registered = set(list_matchers())
    for name, matcher in matchers.items():
        label = str(files[name]) if files else f"{where}: matcher {name!r}"
        classes = getattr(matcher, "classes_", None)
        if classes is None:
            raise ArtifactError(f"{label}: matcher {name!r} is not fitted")
        problem = _names_diff(f"matcher {name!r} classes_", [str(c) for c in classes], datasets)
        if problem:
            raise ArtifactError(f"{label}: {problem}")
        if int(getattr(matcher, "n_features_in_", -1)) != spec.feature_dim:
            raise ArtifactError(f"{label}: matcher {name!r} takes {getattr(matcher, 'n_features_in_', None)} features, "
                                f"the fingerprint spec gives {spec.feature_dim}")
        try:
            kind = matcher_name(matcher)
        except ValueError as exc:
            raise ArtifactError(f"{label}: {exc}") from exc
        if name in registered and kind != name:
            raise ArtifactError(f"{label}: portfolio matcher {name!r} is a {kind!r} matcher")


def _check_version(p: Portfolio, where: str) -> None:
    """Check the version string's form and that its hash part matches the recomputed content hash."""
    match = VERSION_PATTERN.match(p.version)
    if not match:
        raise ArtifactError(f"{where}: version {p.version!r} is not of the form <prefix>-<YYYY.MM.DD>-<8 hex>")
    actual = p.content_hash()[:8]
    if match["hash"] != actual:
        raise ArtifactError(f"{where}: version {p.version!r} does not match the content hash {actual} "
                            "(portfolio.json was changed after it was versioned)")


def check_portfolio(portfolio: Portfolio, matchers: Mapping[str, BaseMatcher] | None = None,
                    where: str = "portfolio") -> None:
    """Run every consistency check (matchers too, when given); ArtifactError prefixed by ``where`` on failure."""
    _, _, spec, _, _ = _check_content(portfolio, where)
    if matchers is not None:
        _check_matchers(portfolio, matchers, spec, where)
    _check_version(portfolio, where)


# ------------------------------------------------------------------------------------------ build


def build_portfolio(*, entries: Sequence[PortfolioEntry], matrix: PerformanceMatrix,
                    fingerprint_spec: FingerprintSpec | Mapping[str, Any],
                    config_space: ConfigurationSpace | Mapping[str, Any], matcher_names: Iterable[str],
                    scenario: Any = None, reduced_tolerance: float = 0.0, reduced_max_size: int | None = None,
                    version_prefix: str = "demo", created_at: _dt.datetime | None = None,
                    fingerprint_sampling: Mapping[str, int] | None = None,
                    candidates: Sequence[Candidate] | None = None, performance: PerformanceData | None = None,
                    selection: SelectionSettings | None = None,
                    extra_provenance: Mapping[str, Any] | None = None) -> Portfolio:
    """Assemble a checked, versioned Portfolio: greedy curve, reduced portfolio, matcher file names, provenance.

    ``candidates`` default to the entries' incumbents (a square matrix); ``performance`` carries the learning
    curves when they were recorded (its matrix must be ``matrix``); ``selection`` defaults to uncalibrated
    settings (see :func:`portfolio.calibration.calibrate`). ``fingerprint_sampling`` (``n_samples``, ``seed``)
    records how the matchers' fingerprints were drawn, so an evaluation can find or redraw exactly those.
    """
    if performance is not None and performance.matrix != matrix:
        raise ValueError("performance.matrix must be the matrix given")
    from metarec import __version__

    created = created_at or _dt.datetime.now(_dt.timezone.utc)
    spec = fingerprint_spec.to_dict() if isinstance(fingerprint_spec, FingerprintSpec) else dict(fingerprint_spec)
    from ConfigSpace import ConfigurationSpace

    # a ConfigurationSpace is itself a Mapping (of hyperparameters), so test for it first
    space = space_to_dict(config_space) if isinstance(config_space, ConfigurationSpace) else dict(config_space)
    steps = greedy_reduced_portfolio(matrix, reduced_max_size)
    chosen = choose_reduced(steps, reduced_tolerance)
    portfolio = Portfolio(
        fingerprint_spec=spec,
        config_space=space,
        entries=list(entries),
        candidates=list(candidates) if candidates is not None else incumbent_candidates(entries),
        performance_matrix=matrix.to_dict(),
        curves=performance.curves_to_dict() if performance is not None else None,
        reduced_portfolio=list(chosen.members),
        reduced_portfolio_curve=[s.to_dict() for s in steps],
        selection=(selection or SelectionSettings()).to_dict(),
        matchers={name: matcher_file_name(name) for name in matcher_names},
        provenance={
            "dataset_hashes": {e.dataset: e.summary.get("content_hash") for e in entries},
            "scenario": scenario,
            "metarec_version": __version__,
            "created_at": created.isoformat(timespec="seconds"),
            **({"fingerprint_sampling": dict(fingerprint_sampling)} if fingerprint_sampling else {}),
            **dict(extra_provenance or {}),
        },
    ).with_version(version_prefix, created.strftime("%Y.%m.%d"))
    check_portfolio(portfolio, where="portfolio")
    return portfolio


# ------------------------------------------------------------------------------------------ save / load


def save_portfolio(portfolio: Portfolio, directory: str | Path, matchers: Mapping[str, BaseMatcher],
                   overwrite: bool = False, figures: bool = True) -> Path:
    """Check, then atomically write ``portfolio.json``, one file per matcher and (by default) the two figures.

    Everything is written into a hidden temporary folder beside ``directory`` and renamed into place, so
    readers see either the old portfolio or the complete new one. An existing non-empty ``directory`` is
    refused (OutputExistsError) unless ``overwrite``.
    """
    directory = Path(directory)
    check_portfolio(portfolio, matchers, where=str(directory))
    if directory.exists() and not directory.is_dir():
        raise OutputExistsError(directory, "exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise OutputExistsError(directory, "is not empty; pass overwrite=True to replace the portfolio there")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".partial", dir=directory.parent))
    old: Path | None = None
    try:
        text = json.dumps(portfolio.model_dump(mode="json"), indent=2, sort_keys=True, allow_nan=False)
        (tmp / PORTFOLIO_FILE).write_text(text + "\n", encoding="utf-8")
        for name, matcher in matchers.items():
            save_matcher(matcher, tmp / portfolio.matchers[name], portfolio.fingerprint_spec)
        if figures:
            from portfolio.figures import plot_performance_matrix, plot_portfolio_curve

            plot_performance_matrix(portfolio.matrix(), tmp / MATRIX_FIGURE)
            plot_portfolio_curve(portfolio.curve(), tmp / CURVE_FIGURE)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".old", dir=directory.parent))
            os.rmdir(old)
            os.rename(directory, old)
        os.rename(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not directory.exists():
            os.rename(old, directory)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return directory


def load_portfolio(directory: str | Path) -> LoadedPortfolio:
    """Read a portfolio directory and check every part against every other; ArtifactError names file and problem."""
    directory = Path(directory)
    path = directory / PORTFOLIO_FILE
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: not a portfolio directory (no such directory)")
    if not path.is_file():
        raise ArtifactError(f"{path}: missing (not a portfolio directory)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(data).__name__}")
    version = data.get("format_version")
    if isinstance(version, bool) or version != PORTFOLIO_FORMAT_VERSION:
        raise ArtifactError(f"{path}: unsupported portfolio format_version {version!r} "
                            f"(this metarec reads {PORTFOLIO_FORMAT_VERSION})")
    try:
        portfolio = Portfolio.model_validate(data)
    except ValidationError as exc:
        raise ArtifactError(f"{path}: {_pydantic_problem(exc)}") from exc
    performance, space, spec, configs, selection = _check_content(portfolio, str(path))
    matchers: dict[str, BaseMatcher] = {}
    files: dict[str, Path] = {}
    for name, file_name in portfolio.matchers.items():
        file = directory / file_name
        if not file.is_file():
            raise ArtifactError(f"{file}: file of matcher {name!r} is missing (named in {path})")
        try:
            matchers[name] = load_matcher(file, expected_spec=portfolio.fingerprint_spec)
        except SpecMismatchError as exc:
            raise PortfolioSpecMismatchError(file, exc.expected, exc.got) from exc
        files[name] = file
    _check_matchers(portfolio, matchers, spec, str(path), files)
    _check_version(portfolio, str(path))
    return LoadedPortfolio(directory=directory, portfolio=portfolio, matchers=matchers, matrix=performance.matrix,
                           space=space, fingerprint_spec=spec, configs=configs, performance=performance,
                           selection=selection)
