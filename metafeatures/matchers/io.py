"""Save and load fitted matchers as one pickle-free ``.npz`` file (arrays plus a JSON ``__meta__`` entry).

Layout: every learned array (k-means centres, scaler mean/scale, cluster distributions, torch weights as
numpy, ...) is stored under its own name; ``__meta__`` is a JSON string holding ``format_version``, the
registered ``matcher`` name, its ``params``, ``classes_``, ``n_features_in_``, the ``fingerprint_spec``
the features were made under, the versions of metarec / scikit-learn / torch / numpy, ``created_at`` and
the matcher's JSON-able ``state``. Loading uses ``allow_pickle=False``, so a file cannot run code.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from metafeatures.errors import ArtifactError, SpecMismatchError
from metafeatures.matchers._base import BaseMatcher
from metafeatures.matchers.registry import matcher_class, matcher_name

#: version of the on-disk layout; bump when it changes incompatibly
MATCHER_FORMAT_VERSION = 2  # 2: every matcher stores class centroids (absolute distance, novelty)

_META_KEY = "__meta__"
_REQUIRED_KEYS = (
    "format_version",
    "matcher",
    "params",
    "classes_",
    "n_features_in_",
    "fingerprint_spec",
    "metarec_version",
    "sklearn_version",
    "torch_version",
    "numpy_version",
    "created_at",
    "state",
)


def _metarec_version() -> str:
    """``metarec.__version__`` if the package provides one, else "unknown" (imported lazily)."""
    try:
        import metarec

        return str(getattr(metarec, "__version__", "unknown"))
    except Exception:  # any import problem just means "unknown"
        return "unknown"


def _jsonable(value: Any, what: str) -> Any:
    """Round-trip ``value`` through JSON (numpy scalars become Python numbers); ValueError if impossible."""

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(f"{type(o).__name__} is not JSON serialisable")

    try:
        return json.loads(json.dumps(value, default=default, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{what} must be JSON-serialisable (ints, floats, strings, lists, dicts): {e}"
        ) from e


def read_matcher_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The hyperparameters recorded in a matcher file of any format version (to refit it under a new one)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data[_META_KEY]))
        return dict(meta["params"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{path}: cannot read the matcher's parameters ({exc})") from exc


def save_matcher(matcher: BaseMatcher, path: str | os.PathLike[str], fingerprint_spec: dict) -> Path:
    """Write a fitted matcher to ``path`` (one ``.npz``, no pickle), tagged with its fingerprint spec."""
    import sklearn
    import torch

    if not isinstance(fingerprint_spec, dict):
        raise TypeError(f"fingerprint_spec must be a dict, got {type(fingerprint_spec).__name__}")
    name = matcher_name(matcher)
    state, arrays = matcher._get_state()
    meta = {
        "format_version": MATCHER_FORMAT_VERSION,
        "matcher": name,
        "params": _jsonable(matcher.get_params(deep=False), "matcher params (random_state: int or None)"),
        "classes_": state.pop("classes_"),
        "n_features_in_": state.pop("n_features_in_"),
        "fingerprint_spec": _jsonable(fingerprint_spec, "fingerprint_spec"),
        "metarec_version": _metarec_version(),
        "sklearn_version": sklearn.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "state": _jsonable(state, "matcher state"),
    }
    for key, arr in arrays.items():
        if key == _META_KEY or "/" in key or not isinstance(arr, np.ndarray) or arr.dtype.hasobject:
            raise ValueError(f"cannot store state array {key!r} without pickle")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            # Any-typed: numpy's stub would match the array values against savez's allow_pickle flag
            members: dict[str, Any] = {_META_KEY: np.array(json.dumps(meta, sort_keys=True)), **arrays}
            np.savez(fh, **members)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_matcher_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``__meta__`` dict of a saved matcher, checked for required keys and format version."""
    return _read(Path(path))[0]


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and check the meta dict and the arrays of a saved matcher; ArtifactError names the file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise ArtifactError(f"{path}: not a matcher artifact (a bare .npy array, not an .npz)")
            if _META_KEY not in npz.files:
                raise ArtifactError(f"{path}: not a matcher artifact (no {_META_KEY} entry)")
            raw = npz[_META_KEY]
            arrays = {k: npz[k] for k in npz.files if k != _META_KEY}
    except ArtifactError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ArtifactError(f"{path}: cannot read matcher artifact: {e}") from e
    try:
        meta = json.loads(str(raw[()]))
    except (ValueError, TypeError, IndexError) as e:
        raise ArtifactError(f"{path}: {_META_KEY} is not a JSON string: {e}") from e
    if not isinstance(meta, dict):
        raise ArtifactError(f"{path}: {_META_KEY} is not a JSON object")
    missing = [k for k in _REQUIRED_KEYS if k not in meta]
    if missing:
        raise ArtifactError(f"{path}: matcher artifact lacks key(s) {', '.join(missing)}")
    version = meta["format_version"]
    if isinstance(version, bool) or version != MATCHER_FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: unsupported matcher format_version {version!r} "
            f"(this metarec reads version {MATCHER_FORMAT_VERSION})"
        )
    for key, typ in (("params", dict), ("state", dict), ("fingerprint_spec", dict), ("classes_", list)):
        if not isinstance(meta[key], typ):
            raise ArtifactError(f"{path}: {key} in {_META_KEY} should be a {typ.__name__}")
    return meta, arrays


def load_matcher(path: str | os.PathLike[str], expected_spec: dict | None = None) -> BaseMatcher:
    """Load a matcher saved by :func:`save_matcher`; refuse bad files and (if given) a different spec."""
    path = Path(path)
    meta, arrays = _read(path)
    if expected_spec is not None:
        expected = _jsonable(expected_spec, "expected_spec")
        if expected != meta["fingerprint_spec"]:
            raise SpecMismatchError(expected, meta["fingerprint_spec"])
    try:
        cls = matcher_class(meta["matcher"])
    except ValueError as e:
        raise ArtifactError(f"{path}: {e}") from e
    try:
        matcher = cls(**meta["params"])
    except TypeError as e:
        raise ArtifactError(f"{path}: params do not fit {cls.__name__}: {e}") from e
    state = dict(meta["state"], classes_=meta["classes_"], n_features_in_=meta["n_features_in_"])
    try:
        matcher._check_params()
        matcher._set_state(state, arrays)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise ArtifactError(f"{path}: corrupt {meta['matcher']} matcher state: {e!r}") from e
    return matcher
