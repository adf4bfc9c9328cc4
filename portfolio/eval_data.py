"""Where the evaluation gets a portfolio's known datasets and their fingerprints from.

A portfolio directory stores its matchers but not the fingerprints they were fitted on (tens of MB), so
the leave-one-dataset-out evaluation, which refits matchers without one dataset, needs them back. They
are looked up, per dataset, in this order: the fingerprint cache (keyed by the dataset's content hash,
which the portfolio records, and by its fingerprint spec); a ``--collection`` holding the datasets; and,
for the demo datasets and the default meta-collection's variants, their collection regenerated
deterministically into the cache. Every dataset found on disk must have exactly the content hash the
portfolio recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metafeatures.datasets import Dataset, open_collection
from metafeatures.errors import ArtifactError, DatasetError
from metafeatures.fingerprint import Fingerprinter, Fingerprints, cache_path
from metafeatures.paths import cache_dir
from metafeatures.summary import content_hash
from portfolio.artifact import LoadedPortfolio

Say = Callable[[str], None]


def demo_collection_dir(seed: int = 0) -> Path:
    """Where the demo collection is regenerated when a portfolio's datasets are needed and not given."""
    return cache_dir() / "demo-collection" / f"seed-{seed}"


def _cached(loaded: LoadedPortfolio, name: str, n_samples: int, seed: int) -> np.ndarray | None:
    """The cached fingerprints of known dataset ``name`` under the portfolio's spec, or None."""
    path = cache_path(loaded.portfolio.provenance["dataset_hashes"][name], loaded.fingerprint_spec, n_samples, seed)
    if not path.is_file():
        return None
    try:
        return Fingerprints.load(path, expected_spec=loaded.fingerprint_spec).features
    except ArtifactError:
        return None


def _matching(datasets: dict[str, Dataset], names: Sequence[str], hashes: dict[str, str]) -> dict[str, Dataset]:
    """Those of ``names`` present in ``datasets`` with the content hash the portfolio recorded."""
    return {n: datasets[n] for n in names if n in datasets and content_hash(datasets[n]) == hashes[n]}


def _from_collection(collection: Path, names: Sequence[str], hashes: dict[str, str]) -> dict[str, Dataset]:
    """The named known datasets from ``collection``; ArtifactError if any is absent or differs."""
    found = _matching(open_collection(collection), names, hashes)
    absent = [n for n in names if n not in found]
    if absent:
        raise ArtifactError(f"{collection}: lacks the portfolio's dataset(s) {', '.join(absent)} with the content "
                            "hashes the portfolio recorded (provenance.dataset_hashes)")
    return found


def meta_collection_dir(seed: int = 0) -> Path:
    """Where the default meta-collection is regenerated when a portfolio built on it needs its datasets."""
    return cache_dir() / "meta-collection" / f"seed-{seed}"


def _from_meta(names: Sequence[str], hashes: dict[str, str], seed: int, progress: bool, say: Say,
               ) -> dict[str, Dataset]:
    """The named meta-collection variants, regenerated into the cache; ArtifactError if they differ."""
    from metafeatures.derive import build_meta_collection

    root = meta_collection_dir(seed)
    found = _matching(open_collection(root), names, hashes) if root.is_dir() else {}
    if len(found) < len(names):
        say(f"regenerating the meta-collection into {root} (the portfolio's fingerprints are not cached; pass "
            "--collection DIR to use your own copy)")
        build_meta_collection(root, seed=seed, progress=progress, overwrite=True)
        found = _matching(open_collection(root), names, hashes)
    wrong = [n for n in names if n not in found]
    if wrong:
        raise ArtifactError(f"the regenerated meta-collection dataset(s) {', '.join(wrong)} (seed {seed}) differ from "
                            "the portfolio's (provenance.dataset_hashes); pass --collection DIR holding the originals")
    return found


def _from_demo(names: Sequence[str], hashes: dict[str, str], seed: int, progress: bool, say: Say) -> dict[str, Dataset]:
    """The named known datasets regenerated from the demo generator into the cache; ArtifactError if impossible."""
    from metafeatures.demo import DEMO_DATASETS, generate_demo_collection
    from metafeatures.demo_video import VIDEO_DEMO_DATASETS, generate_video_demo

    sources = set(DEMO_DATASETS) | set(VIDEO_DEMO_DATASETS)
    derived = [n for n in names if n.partition("__v")[0] in sources and n.partition("__v")[2].isdigit()]
    if derived:  # the meta-collection's variants: regenerated whole (deterministic by seed)
        found = _from_meta(derived, hashes, seed, progress, say)
        rest = [n for n in names if n not in found]
        return {**found, **(_from_demo(rest, hashes, seed, progress, say) if rest else {})}
    foreign = [n for n in names if n not in DEMO_DATASETS and n not in VIDEO_DEMO_DATASETS]
    if foreign:
        raise ArtifactError(f"no cached fingerprints of the portfolio's dataset(s) {', '.join(foreign)}, which are "
                            "not demo datasets; pass --collection DIR holding them")
    root = demo_collection_dir(seed)
    found = _matching(open_collection(root), names, hashes) if root.is_dir() else {}
    todo = [n for n in names if n not in found]
    if todo:
        say(f"regenerating demo dataset(s) {', '.join(todo)} into {root} (the portfolio's fingerprints are not "
            "cached; pass --collection DIR to use your own copy)")
        images = [n for n in todo if n in DEMO_DATASETS]
        videos = [n for n in todo if n in VIDEO_DEMO_DATASETS]
        if images:
            generate_demo_collection(root, seed=seed, progress=progress, overwrite=True, only=images)
        if videos:
            generate_video_demo(root, seed=seed, progress=progress, overwrite=True, only=videos)
        found.update(_matching(open_collection(root), todo, hashes))
    wrong = [n for n in names if n not in found]
    if wrong:
        raise ArtifactError(f"the regenerated demo dataset(s) {', '.join(wrong)} (seed {seed}) differ from the "
                            "portfolio's (provenance.dataset_hashes); pass --collection DIR holding the originals")
    return found


def known_datasets(names: Sequence[str], hashes: dict[str, str], collection: Path | None = None, seed: int = 0,
                   progress: bool = False, say: Say | None = None) -> dict[str, Dataset]:
    """The named known datasets with the recorded content hashes: from ``collection``, or regenerated demo ones."""
    say = say or (lambda _message: None)
    return (_from_collection(collection, names, hashes) if collection is not None
            else _from_demo(names, hashes, seed, progress, say))


def portfolio_fingerprints(loaded: LoadedPortfolio, make_fingerprinter: Callable[[], Fingerprinter],
                           collection: Path | None = None, n_samples: int = 512, seed: int = 0,
                           use_cache: bool = True, progress: bool = False, say: Say | None = None,
                           ) -> dict[str, np.ndarray]:
    """Fingerprints (n_samples × feature_dim) of every known dataset, under the portfolio's spec."""
    say = say or (lambda _message: None)
    hashes: dict[str, str] = loaded.portfolio.provenance["dataset_hashes"]
    names = loaded.portfolio.datasets
    out: dict[str, np.ndarray] = {}
    if use_cache:
        for name in names:
            features = _cached(loaded, name, n_samples, seed)
            if features is not None:
                out[name] = features
    missing = [n for n in names if n not in out]
    if not missing:
        return out
    datasets = known_datasets(missing, hashes, collection, seed, progress, say)
    fingerprinter = make_fingerprinter()
    loaded.fingerprint_spec.require_same(fingerprinter.spec)
    for name in missing:
        say(f"fingerprinting {name} ({n_samples} images)")
        out[name] = fingerprinter.fingerprint(datasets[name], hashes[name], n_samples=n_samples, seed=seed,
                                              use_cache=use_cache, progress=progress).features
    return {n: out[n] for n in names}


def heldout_datasets(loaded: LoadedPortfolio, collection: Path, only: Sequence[str] | None = None,
                     ) -> dict[str, Dataset]:
    """Datasets of ``collection`` the portfolio does not know (neither by name nor by content hash)."""
    datasets = open_collection(collection)
    known_hashes = set(loaded.portfolio.provenance["dataset_hashes"].values())
    known = set(loaded.portfolio.datasets)
    if only:
        absent = [n for n in only if n not in datasets]
        if absent:
            raise DatasetError(collection, f"has no dataset(s) {', '.join(absent)}; it has {', '.join(datasets)}")
        inside = [n for n in only if n in known]
        if inside:
            raise DatasetError(collection, f"dataset(s) {', '.join(inside)} are known to the portfolio, so they "
                                           "are not held out")
        datasets = {n: datasets[n] for n in only}
    held: dict[str, Any] = {n: ds for n, ds in datasets.items()
                            if n not in known and content_hash(ds) not in known_hashes}
    if not held:
        raise DatasetError(collection, "has no dataset the portfolio does not already know; nothing is held out")
    return held
