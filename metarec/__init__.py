"""metarec: recommend a pretrained backbone and fine-tuning hyperparameters for a new image dataset."""

import metafeatures  # noqa: F401  (sets the OpenMP wait policy before torch is imported)

__version__ = "0.1.0"
__all__ = ["__version__", "recommend"]


def __getattr__(name: str) -> object:
    """``metarec.recommend`` is imported on first use, so ``import metarec`` (the CLI) stays light."""
    if name == "recommend":
        from metarec.api import recommend

        return recommend
    raise AttributeError(f"module 'metarec' has no attribute {name!r}")
