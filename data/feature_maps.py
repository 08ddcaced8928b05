"""Precomputed feature maps (pix2pixHD's ``{phase}_feat`` folder for ``--load_features``): reading and writing.

File format: ``{dataroot}/{phase}_feat/{key}.npz``, NumPy's compressed npz (lossless; read with
``allow_pickle=False``) holding one array ``feat``: float32 ``[feat_num, H, W]`` at the size of the sample's label
map, each instance (segment) constant. pix2pixHD's own maps are read too when no npz is there: 8-bit RGB PNGs with
value ``v`` stored as ``(v + 1) / 2 * 255`` (so ``feat_num`` 3 and quantised), which its
``precompute_feature_maps.py`` names after the label file (``train_feat/<label file name>``); ``{key}.png`` is
accepted as well.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from synth.core.atomic import atomic_write_bytes
from synth.core.errors import DataError

FEATURE_MAP_SUFFIX = ".npz"
PIX2PIXHD_SUFFIX = ".png"


def feature_dir(dataroot: str | Path, phase: str) -> Path:
    """``{dataroot}/{phase}_feat``, where pix2pixHD keeps precomputed feature maps."""
    return Path(dataroot) / f"{phase}_feat"


def find_feature_map(folder: Path, key: str, label_path: Path | None = None) -> Path:
    """The map of sample ``key``: ours (npz), or pix2pixHD's PNG named after the label file or the key; DataError
    naming our file when none exists."""
    ours = folder / f"{key}{FEATURE_MAP_SUFFIX}"
    theirs = [folder / Path(label_path).with_suffix(PIX2PIXHD_SUFFIX).name] if label_path is not None else []
    for path in [ours, *theirs, folder / f"{key}{PIX2PIXHD_SUFFIX}"]:
        if path.is_file():
            return path
    raise DataError(f"{ours}: feature map not found (make the maps with synth-precompute-features --name RUN)")


def write_feature_map(path: str | Path, feat: np.ndarray) -> Path:
    """Write a [feat_num, H, W] map as float32 npz, atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, feat=np.asarray(feat, np.float32))
    return atomic_write_bytes(path, buffer.getvalue())


def read_feature_map(path: str | Path, feat_num: int, size_hw: tuple[int, int]) -> np.ndarray:
    """A map as float32 (H, W, feat_num), checked against ``feat_num`` and the label map's size; DataError
    naming the file when it is unreadable or of another shape."""
    path = Path(path)
    feat = _read_png(path) if path.suffix.lower() == PIX2PIXHD_SUFFIX else _read_npz(path)
    if feat.ndim != 3 or feat.shape[0] != feat_num:
        raise DataError(f"{path}: feature map has shape {tuple(feat.shape)}, expected [{feat_num}, H, W] (--feat_num)")
    if tuple(feat.shape[1:]) != tuple(size_hw):
        raise DataError(
            f"{path}: feature map is {feat.shape[2]}x{feat.shape[1]}, its label map {size_hw[1]}x{size_hw[0]}"
        )
    if not np.isfinite(feat).all():
        raise DataError(f"{path}: feature map holds NaN or infinite values")
    return np.ascontiguousarray(feat.transpose(1, 2, 0))


def _read_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:
            feat = np.asarray(data["feat"])
    except (OSError, KeyError, ValueError, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a feature map file ({reason})") from None
    if not np.issubdtype(feat.dtype, np.floating):
        raise DataError(f"{path}: feature map must hold floats, not {feat.dtype}")
    return feat.astype(np.float32, copy=False)


def _read_png(path: Path) -> np.ndarray:
    """pix2pixHD's 8-bit RGB map back to [-1, 1] (its ``normalize()`` after ``ToTensor``)."""
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), np.float32)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read feature map ({type(exc).__name__})") from None
    return (rgb / 127.5 - 1.0).transpose(2, 0, 1)
