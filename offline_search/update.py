"""A new portfolio version from an existing one: same known datasets and incumbents, re-assembled.

Reads only what every portfolio format keeps (entries, scenario, fingerprint spec and sampling, matcher
names and hyperparameters), so it also brings an older-format portfolio up to the current one. The
candidate pool (every incumbent, plus the seed-000 default) is evaluated on every known dataset with
learning curves (cells resume from the work directory), the matchers are refitted with their recorded
hyperparameters, the selection is recalibrated, and the result is written atomically to ``out``; the
source keeps serving until then.

``added`` datasets (e.g. those the service's jobs ran on) become known datasets: the pool is evaluated on
them too, through the observation store ``store``, so a job's own observation of a pool candidate at the
portfolio's budget is read back, not trained again; each added dataset's entry is its best pool candidate.
The rows of the source's own store (``<source>.observations.sqlite``, e.g. committed beside a read-only
packaged portfolio) are copied into ``store`` first, so the known datasets' cells are not run again either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from metafeatures.datasets import Dataset, open_dataset
from metafeatures.errors import ArtifactError, ConfigError
from metafeatures.fingerprint import FingerprintSpec
from metafeatures.matchers.io import read_matcher_params
from metafeatures.summary import DatasetSummary, summarize
from offline_search.rebuild import RebuildOptions, _entries_from_pool, assemble, candidate_pool
from offline_search.scenario import SearchScenario
from portfolio.artifact import PORTFOLIO_FILE, PortfolioEntry
from portfolio.eval_data import known_datasets
from portfolio.fingerprinting import fingerprinter_weights
from portfolio.store import ObservationStore


def _read(source: Path) -> dict[str, Any]:
    """The source portfolio's JSON (any format version); ArtifactError if it is not one."""
    path = source / PORTFOLIO_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        for key in ("entries", "fingerprint_spec", "provenance", "matchers", "version"):
            data[key]  # noqa: B018  (presence check)
        return data
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path}: not a portfolio to update from ({exc})") from exc


def source_store(source: Path) -> Path:
    """The observation store a portfolio directory was built with: ``<dir>.observations.sqlite`` beside it."""
    return source.parent / f"{source.name}.observations.sqlite"


def _added(added: Mapping[str, Path], known: dict[str, str]) -> tuple[dict[str, Dataset], dict[str, DatasetSummary]]:
    """Open and summarise the added datasets; refuse a name or a content hash the portfolio already knows."""
    datasets = {name: open_dataset(path, name=name) for name, path in added.items()}
    summaries = {name: summarize(ds) for name, ds in datasets.items()}
    for name, summary in summaries.items():
        if name in known:
            raise ConfigError("added", name, "is already a known dataset of the portfolio (choose another name)")
        if summary.content_hash in known.values():
            twin = next(n for n, h in known.items() if h == summary.content_hash)
            raise ConfigError("added", name, f"has the content of the known dataset {twin}")
    return datasets, summaries


def _located(located: Mapping[str, Path], hashes: dict[str, str]) -> dict[str, Dataset]:
    """The known datasets given by path; ArtifactError if one is not a known dataset or has other content."""
    from metafeatures.summary import content_hash

    out: dict[str, Dataset] = {}
    for name, path in located.items():
        ds = open_dataset(path, name=name)
        if hashes.get(name) != content_hash(ds):
            raise ArtifactError(f"{path}: not the portfolio's known dataset {name} (content hash differs)")
        out[name] = ds
    return out


def update_portfolio(source: Path, out: Path, collection: Path | None = None, work_dir: Path | None = None,
                     include_default: bool = True, overwrite: bool = False,
                     on_progress: Callable[[str], None] | None = None, progress: bool = False,
                     added: Mapping[str, Path] | None = None, store: Path | None = None,
                     on_cell: Callable[[int, int], None] | None = None,
                     located: Mapping[str, Path] | None = None) -> Path:
    """Re-assemble the portfolio in ``source`` into ``out``, plus the ``added`` datasets ({name: path}) as known
    ones, with cells read from / written to ``store`` (default: beside ``out``); see the module docstring.
    ``on_cell(done, total)`` is called after every cell (it may raise to stop the update between cells).
    Known datasets are taken from ``located`` ({name: path}, e.g. those an earlier update added from the
    service's registered datasets), then from ``collection`` (or the regenerated demo datasets)."""
    data = _read(source)
    entries = [PortfolioEntry.model_validate(e) for e in data["entries"]]
    provenance = data["provenance"]
    scenario = SearchScenario.from_dict(provenance["scenario"])
    spec = FingerprintSpec.from_dict(data["fingerprint_spec"])
    weights, _ = fingerprinter_weights(spec, None)
    sampling = provenance.get("fingerprint_sampling") or {"n_samples": 512, "seed": scenario.seed}
    hashes = {e.dataset: str(e.summary["content_hash"]) for e in entries}
    new_sets, new_summaries = _added(added or {}, hashes)
    datasets = _located(located or {}, hashes)
    rest = [n for n in hashes if n not in datasets]
    if rest:
        datasets.update(known_datasets(rest, hashes, collection, seed=0, progress=progress, say=on_progress))
    params = {name: read_matcher_params(source / file) for name, file in data["matchers"].items()}
    opts = RebuildOptions(collection=collection or source, out=out, scenario=scenario,
                          work_dir=work_dir or out.parent / f".{out.name}.work", fingerprint_backbone=spec.backbone,
                          fingerprint_weights=weights, fingerprint_resolution=spec.resolution,
                          n_samples=int(sampling["n_samples"]), matchers=tuple(data["matchers"]),
                          matcher_params=params, overwrite=overwrite, resume=True, on_progress=on_progress,
                          store=store,
                          on_advance=None if on_cell is None else lambda t: on_cell(len(t.cells_done), t.cells_total))
    opts.work().mkdir(parents=True, exist_ok=True)
    _import_source_store(source, opts, on_progress)
    pool = candidate_pool(entries, include_default=include_default, seed=scenario.seed)
    extra: dict[str, Any] = {"updated_from": data["version"]}
    if new_sets:
        summaries = {**{e.dataset: DatasetSummary.model_validate(e.summary) for e in entries}, **new_summaries}
        datasets = {**datasets, **new_sets}
        entries = _entries_from_pool(entries, pool, datasets, summaries, opts)
        extra["added_datasets"] = {n: {"content_hash": s.content_hash, "group": s.group or n}
                                   for n, s in sorted(new_summaries.items())}
    return assemble(entries, datasets, opts, pool=pool, extra_provenance=extra)


def _import_source_store(source: Path, opts: RebuildOptions, say: Callable[[str], None] | None) -> None:
    """Copy the source portfolio's own store into the update's (when they differ and the source has one)."""
    theirs, ours = source_store(source), opts.store_path()
    if theirs.is_file() and theirs.resolve() != ours.resolve():
        n = ObservationStore(ours).import_from(ObservationStore(theirs))
        if say is not None:
            say(f"{n} observation(s) of {theirs.name} copied into {ours.name}")
