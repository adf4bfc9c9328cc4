"""Read rows of a ``.npz`` member without loading the whole array (memory-map or stream)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from metafeatures.errors import NpzFormatError

_CHUNK_BYTES = 8 << 20


def _header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Read the .npy magic and header (shape, fortran_order, dtype) from an open member."""
    major, _ = np.lib.format.read_magic(fh)
    reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    return reader(fh)


def _member(zf: zipfile.ZipFile, key: str, path: Path) -> zipfile.ZipInfo:
    """Return the zip entry holding array ``key`` or raise NpzFormatError."""
    try:
        return zf.getinfo(f"{key}.npy")
    except KeyError:
        raise NpzFormatError(path, f"missing array {key!r} (has {sorted(zf.namelist())})") from None


def read_header(path: Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of array ``key`` in the npz at ``path``, reading only its header."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(_member(zf, key, path)) as fh:
            shape, fortran, dtype = _header(fh)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise NpzFormatError(path, f"not a readable .npz file: {exc}") from exc
    if fortran:
        raise NpzFormatError(path, f"array {key!r} is Fortran-ordered; save it C-ordered")
    if dtype.hasobject:
        raise NpzFormatError(path, f"array {key!r} has object dtype; use numbers or unicode strings")
    return tuple(shape), dtype


def load_small(path: Path, key: str) -> np.ndarray:
    """Load a whole (small) member such as the labels, never unpickling anything."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if key not in data.files:
                raise NpzFormatError(path, f"missing array {key!r} (has {sorted(data.files)})")
            return np.asarray(data[key])
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise NpzFormatError(path, f"cannot read array {key!r}: {exc}") from exc


def take_rows(path: Path, key: str, indices: np.ndarray) -> np.ndarray:
    """Rows ``indices`` of array ``key``: memory-mapped when stored uncompressed, else streamed."""
    shape, dtype = read_header(path, key)
    order = np.argsort(indices, kind="stable")
    wanted = np.asarray(indices)[order]
    row_shape = shape[1:]
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
    out = np.empty((len(wanted), *row_shape), dtype=dtype)
    with zipfile.ZipFile(path) as zf:
        info = _member(zf, key, path)
        with zf.open(info) as fh:
            _header(fh)
            header_len = fh.tell()
            if info.compress_type == zipfile.ZIP_STORED:
                mm = _memmap(path, info, header_len, shape, dtype)
                out[:] = mm[wanted]
            else:
                _stream(fh, wanted, row_bytes, dtype, row_shape, out)
    result = np.empty_like(out)
    result[order] = out
    return result


def _memmap(path: Path, info: zipfile.ZipInfo, header_len: int, shape: tuple[int, ...],
            dtype: np.dtype) -> np.ndarray:
    """Memory-map an uncompressed member: local header is 30 bytes + name + extra field."""
    with open(path, "rb") as raw:
        raw.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(raw.read(4), dtype="<u2")
    start = info.header_offset + 30 + int(name_len) + int(extra_len) + header_len
    return np.memmap(path, dtype=dtype, mode="r", offset=start, shape=shape)


def _stream(fh: IO[bytes], wanted: np.ndarray, row_bytes: int, dtype: np.dtype,
            row_shape: tuple[int, ...], out: np.ndarray) -> None:
    """Decompress sequentially in chunks, keeping only the sorted ``wanted`` rows."""
    rows_per_chunk = max(1, _CHUNK_BYTES // max(1, row_bytes))
    pos, k = 0, 0
    while k < len(wanted):
        buf = fh.read(rows_per_chunk * row_bytes)
        n = len(buf) // row_bytes
        if n == 0:
            raise ValueError("npz member ended before all rows were read")
        chunk = np.frombuffer(buf[: n * row_bytes], dtype=dtype).reshape(n, *row_shape)
        while k < len(wanted) and wanted[k] < pos + n:
            out[k] = chunk[wanted[k] - pos]
            k += 1
        pos += n
