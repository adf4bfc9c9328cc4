"""metarec: recommend a pretrained backbone and fine-tuning hyperparameters for a new image dataset."""

import metafeatures  # noqa: F401  (sets the OpenMP wait policy before torch is imported)

__version__ = "0.1.0"
__all__ = ["__version__"]
