"""The auxiliary array file format (NumPy's npz: cluster files, FID statistics, directions, pseudo-labels): written
atomically, read with ``allow_pickle=False`` by one reader that turns every failure into one DataError line.

A ground module: it imports nothing of synth's but the other ground modules.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from synth.core.atomic import atomic_write_bytes
from synth.core.errors import DataError


def save_arrays(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` as an npz, atomically (an interrupted save leaves the old file)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def load_arrays(path: str | Path, what: str, required: Iterable[str] = (), hint: str = "") -> dict[str, np.ndarray]:
    """Every array of the npz at ``path``, fully read (so a damaged member fails here); DataError naming the file
    when it is missing, empty, truncated, not an npz, holds pickled objects or lacks a ``required`` array.
    ``what`` names the kind of file in messages, ``hint`` says how to make one."""
    path = Path(path)
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "not found"
        raise DataError(f"{path}: {what} {problem}{hint}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: {what} is empty (0 bytes){hint}")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a {what} (truncated, or not an npz archive){hint}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key]) for key in data.files}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: not a {what} (damaged or of another format: {reason})") from None
    missing = [key for key in required if key not in arrays]
    if missing:
        raise DataError(f"{path}: not a {what} (no array '{missing[0]}'){hint}")
    return arrays


def require_array(
    path: str | Path, what: str, name: str, array: np.ndarray, ndim: int, numeric: bool = True
) -> np.ndarray:
    """``array`` (called ``name`` in the file) checked to have ``ndim`` dimensions and finite numbers."""
    if array.ndim != ndim:
        raise DataError(f"{path}: {what} array '{name}' has shape {array.shape}, expected {ndim} dimensions")
    if numeric:
        if not np.issubdtype(array.dtype, np.number):
            raise DataError(f"{path}: {what} array '{name}' holds {array.dtype}, expected numbers")
        if not np.isfinite(array).all():
            raise DataError(f"{path}: {what} array '{name}' holds NaN or infinite values")
    return array
