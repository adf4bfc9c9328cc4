"""The Python API for notebooks: ``from metarec import recommend``; the same answer as the CLI and REST."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portfolio.recommender import Recommendation


def recommend(dataset: str | Path, *, portfolio: str | Path | None = None, matcher: str = "mlp",
              n_samples: int = 64, seed: int = 0, device: str | None = None, weights: str | None = None,
              use_cache: bool = True, progress: bool = False, **request: Any) -> Recommendation:
    """Recommend configurations for the dataset at ``dataset`` (image folder, manifest folder, .csv or .npz).

    ``request`` takes the selection fields: ``policy``, ``time_budget_s``, ``max_params``, ``max_flops``,
    ``max_latency_ms``, ``top_k``, ``evidence`` (``"fingerprints"`` or ``"metafeatures"``).
    ``portfolio`` defaults to ``$METAREC_PORTFOLIO_DIR`` or the shipped one.
    Bad input raises :class:`metafeatures.errors.ConfigError` naming the field.
    """
    from metafeatures.datasets import open_dataset
    from metafeatures.errors import ConfigError
    from portfolio.artifact import load_portfolio
    from portfolio.defaults import default_portfolio_dir
    from portfolio.fingerprinting import fingerprinter_for
    from portfolio.recommender import Recommender, parse_request, recommend_dataset

    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or not 1 <= n_samples <= 100_000:
        raise ConfigError("n_samples", n_samples, "must be an integer in [1, 100000]")
    selection = parse_request(request)
    loaded = load_portfolio(Path(portfolio) if portfolio is not None else default_portfolio_dir())
    recommender = Recommender(loaded, matcher)
    fingerprinter = fingerprinter_for(loaded, weights, device=device, how_to_pass="pass weights=PATH")
    rec, _ = recommend_dataset(recommender, fingerprinter, open_dataset(Path(dataset)), selection,
                               n_samples=n_samples, seed=seed, use_cache=use_cache, progress=progress)
    return rec
