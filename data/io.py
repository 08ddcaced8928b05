"""Reading label maps, instance maps and photos from disk into numpy arrays.

Every failure (missing, unreadable, truncated, wrong number of channels) becomes a one-line DataError naming the file.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from synth.core.errors import DataError

#: Lossy formats: compression moves pixel values, so an id map stored in one has ids changed at every edge.
LOSSY_SUFFIXES = (".jpg", ".jpeg")

# PIL modes whose pixels are already single-channel integer ids (P: palette indices are the ids).
_ID_MODES = ("1", "L", "P", "I")


#: A file to read: a path, or an open binary file (e.g. an upload) whose ``name`` attribute names it in messages.
Source = str | PathLike[str] | BinaryIO


def source_name(source: Source) -> str:
    """What messages call ``source``: the path, or an open file's ``name``."""
    return str(getattr(source, "name", source)) if hasattr(source, "read") else str(source)


@contextmanager
def _image_errors(path: str) -> Iterator[None]:
    """Any failure to open or decode an image file as one DataError line naming ``path``."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected an image file") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file (or a format PIL cannot read)") from None
    except (OSError, SyntaxError, ValueError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"{path}: cannot be read as an image ({reason})") from None


def _load(source: Source) -> Image.Image:
    """Open and fully decode an image file, so that damaged files fail here and not later."""
    with _image_errors(source_name(source)), Image.open(source) as img:
        img.load()
        return img


def _read_id_map(source: Source, what: str) -> np.ndarray:
    """A single-channel map of integer ids as an (H, W) int64 array."""
    path = source_name(source)
    img = _load(source)
    bands = len(img.getbands())
    if bands != 1:
        raise DataError(
            f"{path}: {what} has {bands} channels (mode {img.mode}); a single-channel map of ids is expected "
            "(8- or 16-bit grayscale or palette PNG, not a colour visualisation)"
        )
    if img.mode == "F":
        raise DataError(f"{path}: {what} holds floating-point values; a map of integer ids is expected")
    if not (img.mode in _ID_MODES or img.mode.startswith("I;")):
        img = img.convert("I")
    return np.asarray(img).astype(np.int64)


def read_label(path: Source) -> np.ndarray:
    """The class-id map stored at ``path`` as an (H, W) int64 array (palette images give their indices)."""
    return _read_id_map(path, "label map")


def read_instance(path: Source) -> np.ndarray:
    """The instance-id map at ``path`` (e.g. Cityscapes' 16-bit ``class*1000+k`` ids) as an (H, W) int64 array."""
    return _read_id_map(path, "instance map")


def read_image(path: Source) -> np.ndarray:
    """The photo at ``path`` as an (H, W, 3) uint8 RGB array; grayscale, palette and RGBA files are converted."""
    img = _load(path)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def image_size(path: str | PathLike[str]) -> tuple[int, int]:
    """(width, height) of an image file from its header (nothing decoded); DataError naming the file."""
    with _image_errors(str(path)), Image.open(path) as img:
        return img.size


def check_lossless(path: str | PathLike[str], what: str, allow_lossy: bool) -> None:
    """DataError for an id map (``what``: label map, instance map) in a lossy format, unless ``allow_lossy``."""
    if not allow_lossy and str(path).lower().endswith(LOSSY_SUFFIXES):
        raise DataError(
            f"{path}: {what} is a JPEG, whose compression changes ids at every edge; store it as PNG, or pass "
            "--allow_lossy_labels to use it anyway"
        )


def encode_label_png(label: np.ndarray) -> bytes:
    """An (H, W) map of ids < 256 as an 8-bit grayscale PNG (lossless; what ``read_label`` reads back)."""
    if label.min() < 0 or label.max() > 255:
        raise DataError(f"label ids must lie in [0, 255] for an 8-bit PNG, found {label.min()}..{label.max()}")
    return _png_bytes(Image.fromarray(np.ascontiguousarray(label, np.uint8)))


def encode_instance_png(inst: np.ndarray) -> bytes:
    """An (H, W) map of ids < 65536 as a 16-bit grayscale PNG (lossless; what ``read_instance`` reads back)."""
    if inst.min() < 0 or inst.max() > 65535:
        raise DataError(f"instance ids must lie in [0, 65535] for a 16-bit PNG, found {inst.min()}..{inst.max()}")
    return _png_bytes(Image.fromarray(np.ascontiguousarray(inst, np.uint16)))


def encode_image_png(image: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 RGB image as PNG bytes."""
    return _png_bytes(Image.fromarray(np.ascontiguousarray(image, np.uint8)))


def _png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()
