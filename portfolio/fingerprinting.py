"""Rebuild the fingerprinter a portfolio was built with, so new datasets are fingerprinted comparably."""

from __future__ import annotations

import re

from metafeatures.errors import ArtifactError, SpecMismatchError, WeightsNotFoundError
from metafeatures.fingerprint import Fingerprinter, FingerprintSpec
from portfolio.artifact import PORTFOLIO_FILE, LoadedPortfolio, PortfolioSpecMismatchError

_RANDOM_IDENTITY = re.compile(r"^random:seed=(?P<seed>-?\d+)$")


def fingerprinter_weights(spec: FingerprintSpec, weights_path: str | None,
                          how_to_pass: str = "pass --weights PATH") -> tuple[str, int]:
    """The Fingerprinter ``weights`` argument and seed that reproduce the spec's weights identity.

    ``imagenet:…`` → ``imagenet``; ``random:seed=N`` → ``random`` with seed N; ``file:NAME`` needs
    ``weights_path`` (its hash is checked against the spec afterwards). An explicit ``weights_path``
    always wins.
    """
    identity = spec.weights
    if weights_path:
        return weights_path, 0
    if identity.startswith("imagenet:"):
        return "imagenet", 0
    match = _RANDOM_IDENTITY.match(identity)
    if match:
        return "random", int(match["seed"])
    if identity.startswith("file:"):
        raise WeightsNotFoundError(
            f"the portfolio's fingerprints were made with the weights file {identity[5:]!r} "
            f"(sha256 {spec.weights_sha256[:16]}…); {how_to_pass} to that file")
    raise ArtifactError(f"the portfolio's fingerprint spec names weights {identity!r}, which this metarec "
                        "cannot rebuild (expected imagenet:…, random:seed=N or file:NAME)")


def fingerprinter_for(loaded: LoadedPortfolio, weights_path: str | None = None, batch_size: int = 64,
                      device: str | None = None, threads: int | None = None,
                      how_to_pass: str = "pass --weights PATH") -> Fingerprinter:
    """A Fingerprinter whose spec equals the portfolio's; refuses (PortfolioSpecMismatchError) if it cannot be."""
    spec = loaded.fingerprint_spec
    weights, weights_seed = fingerprinter_weights(spec, weights_path, how_to_pass)
    fingerprinter = Fingerprinter(backbone=spec.backbone, weights=weights, resolution=spec.resolution,
                                  batch_size=batch_size, device=device, threads=threads, seed=weights_seed)
    try:
        spec.require_same(fingerprinter.spec)  # expected: the portfolio's spec; got: the one rebuilt here
    except SpecMismatchError as exc:
        mismatch = PortfolioSpecMismatchError(loaded.directory / PORTFOLIO_FILE, exc.expected, exc.got)
        mismatch.args = (f"{mismatch.args[0]} (the fingerprinter rebuilt here differs from the one the portfolio "
                         "was built with, so its fingerprints cannot be matched)",)
        raise mismatch from None
    return fingerprinter
