"""metarec: recommend a pretrained backbone and fine-tuning hyperparameters for a new image dataset."""

__version__ = "0.1.0"
__all__ = ["__version__"]
