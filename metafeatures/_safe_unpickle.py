"""Restricted unpickling of numpy arrays, for data files shipped as pickles (animal-mnist)."""

from __future__ import annotations

import codecs
import gzip
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

# (module, name) -> the object a pickle may ask for. Only what numpy needs to rebuild a plain array:
# ``numpy.core`` is numpy 1's name for ``numpy._core`` (pickles written by numpy 1 use it).
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(_module, "ndarray")] = np.ndarray
    _ALLOWED[(_module, "dtype")] = np.dtype
# protocol 0-2 pickles carry raw bytes as _codecs.encode(text, "latin1"): a pure function, no side effects
_ALLOWED[("_codecs", "encode")] = codecs.encode
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    # protocol-5 pickles of contiguous arrays rebuild them from a byte buffer with this function
    # (a private numpy helper that numpy's type stubs do not declare, hence the ignore)
    _ALLOWED[(_module, "_frombuffer")] = _numeric._frombuffer  # type: ignore[attr-defined]


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle.Unpickler that rebuilds numpy arrays and refuses every other global (no code runs)."""

    def find_class(self, module: str, name: str) -> Any:
        """Return the allowed numpy object for (module, name) or raise pickle.UnpicklingError."""
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global {module}.{name}: only numpy array reconstruction is allowed"
            ) from None


def safe_loads(data: bytes) -> Any:
    """Unpickle bytes that may only contain numpy arrays (and plain containers of them)."""
    return RestrictedUnpickler(io.BytesIO(data)).load()


def load_pickled_array(path: str | Path) -> np.ndarray:
    """Read one numpy array from a pickle file (gzip-compressed when the name ends in .gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        obj = RestrictedUnpickler(f).load()
    if not isinstance(obj, np.ndarray):
        raise pickle.UnpicklingError(f"{path}: expected a numpy array, got {type(obj).__name__}")
    return obj
