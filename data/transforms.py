"""pix2pixHD's joint transforms: one random draw (resize, crop, flip) applied alike to label, instance and photo.

``--resize_or_crop`` modes: resize_and_crop, crop, scale_width, scale_width_and_crop, none. The output size must
be divisible by ``opt.size_multiple`` (the generator's total stride); mode ``none`` rounds to it instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from synth.core.errors import OptionError

MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


@dataclass(frozen=True)
class TransformParams:
    """What to do to one sample: resize ``source_size`` to ``resize_size``, then crop, then flip (sizes are w, h)."""

    source_size: tuple[int, int]
    resize_size: tuple[int, int]
    crop: tuple[int, int, int, int] | None  # x, y, w, h in the resized image
    flip: bool
    output_size: tuple[int, int]


def _resized_size(opt: Any, w0: int, h0: int) -> tuple[int, int]:
    """Size after the resize step of ``opt.resize_or_crop`` (before cropping)."""
    mode = opt.resize_or_crop
    if mode == "resize_and_crop":
        return opt.loadSize, opt.loadSize
    if mode in ("scale_width", "scale_width_and_crop"):
        return opt.loadSize, max(1, int(opt.loadSize * h0 / w0))
    if mode == "crop":
        return w0, h0
    if mode == "none":
        m = opt.size_multiple
        return max(m, round(w0 / m) * m), max(m, round(h0 / m) * m)
    raise OptionError(f"--resize_or_crop {mode!r} is unknown; choose one of: {', '.join(MODES)}")


def _choose_crop(opt: Any, size: tuple[int, int], rng: random.Random) -> tuple[int, int, int, int] | None:
    """A fineSize square inside ``size``: random when training, centred at test time; None if the mode has no crop."""
    if opt.resize_or_crop not in ("resize_and_crop", "crop", "scale_width_and_crop"):
        return None
    w, h, c = size[0], size[1], opt.fineSize
    if c > w or c > h:
        raise OptionError(
            f"crop {c}x{c} (--fineSize {c}) is larger than the image after resizing ({w}x{h}, "
            f"--resize_or_crop {opt.resize_or_crop} --loadSize {opt.loadSize}); lower --fineSize or raise --loadSize"
        )
    if opt.isTrain:
        return rng.randint(0, w - c), rng.randint(0, h - c), c, c
    return (w - c) // 2, (h - c) // 2, c, c


def _check_multiple(opt: Any, size_wh: tuple[int, int], out: tuple[int, int]) -> None:
    """OptionError unless both sides of the output are divisible by the generator's stride."""
    m = opt.size_multiple
    if out[0] % m == 0 and out[1] % m == 0:
        return
    raise OptionError(
        f"output size {out[0]}x{out[1]} (from {size_wh[0]}x{size_wh[1]} with --resize_or_crop "
        f"{opt.resize_or_crop} --loadSize {opt.loadSize} --fineSize {opt.fineSize}) is not divisible by {m}, "
        f"the generator's total stride; change --loadSize/--fineSize or use --resize_or_crop none"
    )


def minimum_side(size_multiple: int) -> int:
    """The smallest input side the networks take: two pixels at the generator's bottleneck (instance norm needs
    more than one value per channel), i.e. twice its total stride."""
    return 2 * size_multiple


def output_size(opt: Any, size_wh: tuple[int, int]) -> tuple[int, int]:
    """(w, h) of the network input made from a source of ``size_wh``; OptionError when the flags cannot make one
    (crop larger than the image, size not divisible by the stride)."""
    return choose_params(opt, size_wh, random.Random(0)).output_size


def choose_params(opt: Any, size_wh: tuple[int, int], rng: random.Random) -> TransformParams:
    """Draw one sample's resize/crop/flip from ``rng`` for a source of ``size_wh`` = (w, h)."""
    w0, h0 = int(size_wh[0]), int(size_wh[1])
    resized = _resized_size(opt, w0, h0)
    crop = _choose_crop(opt, resized, rng)
    out = (crop[2], crop[3]) if crop is not None else resized
    _check_multiple(opt, (w0, h0), out)
    flip = bool(opt.isTrain and not opt.no_flip and rng.random() < 0.5)
    return TransformParams((w0, h0), resized, crop, flip, out)


def _check_source(arr: np.ndarray, params: TransformParams) -> None:
    h, w = arr.shape[:2]
    if (w, h) != params.source_size:
        raise ValueError(f"array of size {w}x{h} given to transform params made for {params.source_size}")


def _crop_and_flip(arr: np.ndarray, params: TransformParams) -> np.ndarray:
    if params.crop is not None:
        x, y, w, h = params.crop
        arr = arr[y : y + h, x : x + w]
    if params.flip:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(arr)


def apply_to_label(arr: np.ndarray, params: TransformParams) -> np.ndarray:
    """Resize (nearest neighbour, so no new ids appear), crop and flip an (H, W) id map, or an (H, W, C) map of
    per-segment values (precomputed features); keeps its dtype."""
    _check_source(arr, params)
    (w0, h0), (w, h) = params.source_size, params.resize_size
    if (w, h) != (w0, h0):
        # Sample at pixel centres, as PIL's NEAREST does, but on any integer dtype.
        ys = np.minimum(((np.arange(h) + 0.5) * (h0 / h)).astype(np.int64), h0 - 1)
        xs = np.minimum(((np.arange(w) + 0.5) * (w0 / w)).astype(np.int64), w0 - 1)
        arr = arr[ys[:, None], xs[None, :]]
    return _crop_and_flip(arr, params)


def apply_to_image(arr: np.ndarray, params: TransformParams) -> np.ndarray:
    """Resize (bicubic, via PIL), crop and flip an (H, W, 3) uint8 photo."""
    _check_source(arr, params)
    if params.resize_size != params.source_size:
        arr = np.array(Image.fromarray(arr).resize(params.resize_size, Image.Resampling.BICUBIC))
    return _crop_and_flip(arr, params)
