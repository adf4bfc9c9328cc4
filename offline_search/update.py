"""A new portfolio version from an existing one: same known datasets and incumbents, re-assembled.

Reads only what every portfolio format keeps (entries, scenario, fingerprint spec and sampling, matcher
names and hyperparameters), so it also brings an older-format portfolio up to the current one. The
candidate pool (every incumbent, plus the seed-000 default) is evaluated on every known dataset with
learning curves (cells resume from the work directory), the matchers are refitted with their recorded
hyperparameters, the selection is recalibrated, and the result is written atomically to ``out``; the
source keeps serving until then.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metafeatures.errors import ArtifactError
from metafeatures.fingerprint import FingerprintSpec
from metafeatures.matchers.io import read_matcher_params
from offline_search.rebuild import RebuildOptions, assemble, candidate_pool
from offline_search.scenario import SearchScenario
from portfolio.artifact import PORTFOLIO_FILE, PortfolioEntry
from portfolio.eval_data import known_datasets
from portfolio.fingerprinting import fingerprinter_weights


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


def update_portfolio(source: Path, out: Path, collection: Path | None = None, work_dir: Path | None = None,
                     include_default: bool = True, overwrite: bool = False,
                     on_progress: Callable[[str], None] | None = None, progress: bool = False) -> Path:
    """Re-assemble the portfolio in ``source`` into ``out`` (see the module docstring)."""
    data = _read(source)
    entries = [PortfolioEntry.model_validate(e) for e in data["entries"]]
    provenance = data["provenance"]
    scenario = SearchScenario.from_dict(provenance["scenario"])
    spec = FingerprintSpec.from_dict(data["fingerprint_spec"])
    weights, _ = fingerprinter_weights(spec, None)
    sampling = provenance.get("fingerprint_sampling") or {"n_samples": 512, "seed": scenario.seed}
    hashes = {e.dataset: str(e.summary["content_hash"]) for e in entries}
    datasets = known_datasets(list(hashes), hashes, collection, seed=0, progress=progress, say=on_progress)
    params = {name: read_matcher_params(source / file) for name, file in data["matchers"].items()}
    opts = RebuildOptions(collection=collection or source, out=out, scenario=scenario,
                          work_dir=work_dir or out.parent / f".{out.name}.work", fingerprint_backbone=spec.backbone,
                          fingerprint_weights=weights, fingerprint_resolution=spec.resolution,
                          n_samples=int(sampling["n_samples"]), matchers=tuple(data["matchers"]),
                          matcher_params=params, overwrite=overwrite, resume=True, on_progress=on_progress)
    opts.work().mkdir(parents=True, exist_ok=True)
    pool = candidate_pool(entries, include_default=include_default, seed=scenario.seed)
    return assemble(entries, datasets, opts, pool=pool, extra_provenance={"updated_from": data["version"]})
