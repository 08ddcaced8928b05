"""The instances of a batch and what is measured inside them: a compact numbering (``SegmentIndex``), per-instance
pooling and painting, centroids, and the three spatial-frequency bands the modulated generator's layer groups own.

A leaf of ``models.networks``: the generator, its Fourier texture layer and the encoders all read instances this
way, so none of them imports another for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from synth.models.networks.instance_pool import MAX_SEGMENT_ID


@dataclass
class SegmentIndex:
    """The instances of a batch: ``keys`` [N] (image * 2**16 + id, sorted) and ``index`` [B,1,H,W] (row of each
    pixel's instance in ``keys``). Ids that have no pixel never appear, so empty masks take no part.

    ``derived`` holds what callers compute from the numbering alone (no gradients), so that the encoder and the
    generator of one step share it: an index lives for one step."""

    index: torch.Tensor
    keys: torch.Tensor
    derived: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def count(self) -> int:
        return int(self.keys.shape[0])

    def image_of(self) -> torch.Tensor:
        """[N] batch position of each instance."""
        return torch.div(self.keys, MAX_SEGMENT_ID, rounding_mode="floor")

    def id_of(self) -> torch.Tensor:
        """[N] instance id of each instance."""
        return self.keys % MAX_SEGMENT_ID


def index_segments(segments: torch.Tensor) -> SegmentIndex:
    """Compact per-batch instance numbering of ``segments`` [B,1,H,W] (ids in [0, 2**16))."""
    batch = segments.shape[0]
    offsets = torch.arange(batch, device=segments.device).view(batch, 1, 1, 1) * MAX_SEGMENT_ID
    keys, inverse = torch.unique(segments.long() + offsets, sorted=True, return_inverse=True)
    return SegmentIndex(inverse.view(segments.shape), keys)


def as_index(segments: torch.Tensor | SegmentIndex) -> SegmentIndex:
    """``segments`` [B,1,H,W] numbered by ``index_segments``, or an index a caller already computed for this step
    (numbering is a ``torch.unique``, a host sync on a GPU: once per step is enough)."""
    return segments if isinstance(segments, SegmentIndex) else index_segments(segments)


def pool_instances(features: torch.Tensor, index: SegmentIndex) -> torch.Tensor:
    """Mean of ``features`` [B,C,h,w] inside each instance -> [N, C], area-weighted at any resolution.

    Features coarser than the mask are nearest-upsampled first, so every instance with a pixel gets a vector
    at every level (none vanishes at a coarse level) and averaging equals area-weighted pooling of the cells."""
    height, width = index.index.shape[-2:]
    if features.shape[-2:] != (height, width):
        features = F.interpolate(features, size=(height, width), mode="nearest")
    channels = features.shape[1]
    flat = features.permute(0, 2, 3, 1).reshape(-1, channels)
    rows = index.index.reshape(-1)
    sums = flat.new_zeros(index.count, channels).index_add_(0, rows, flat)
    counts = flat.new_zeros(index.count).index_add_(0, rows, flat.new_ones(rows.shape[0]))
    return sums / counts.clamp(min=1).unsqueeze(1)


def instance_centroids(index: SegmentIndex) -> torch.Tensor:
    """[N, 2] mean (x, y) pixel position of each instance (what the texture codes' phases are measured from)."""
    batch, _, height, width = index.index.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=index.index.device, dtype=torch.float64),
                            torch.arange(width, device=index.index.device, dtype=torch.float64), indexing="ij")
    positions = torch.stack([xs, ys]).unsqueeze(0).expand(batch, 2, height, width)
    return pool_instances(positions, index)


# ----- the bands --------------------------------------------------------------------------------------------

#: Rec. 601 luma weights: the luminance that the mid and fine bands are taken from.
LUMA = (0.299, 0.587, 0.114)
CONTRAST_EPS = 0.05


def luminance(image: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] luma in [0, 1] of an RGB image in [-1, 1] (the mean of the channels for other channel counts)."""
    unit = (image + 1) / 2
    if unit.shape[1] != len(LUMA):
        return unit.mean(1, keepdim=True)
    return sum(w * unit[:, c:c + 1] for c, w in enumerate(LUMA))


def lowpass(x: torch.Tensor, cell: int) -> torch.Tensor:
    """Area average over ``cell`` x ``cell`` cells, bilinearly upsampled back: a Laplacian pyramid's low band."""
    small = F.avg_pool2d(x, cell, ceil_mode=True)
    return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)


def paint(values: torch.Tensor, index) -> torch.Tensor:
    """[N, C] per-instance values -> [B, C, H, W] map holding each pixel's instance value."""
    return values[index.index[:, 0]].permute(0, 3, 1, 2)


def frequency_bands(image: torch.Tensor, segments: torch.Tensor | SegmentIndex, cell: int
                    ) -> dict[str, torch.Tensor]:
    """An instance's three bands: ``coarse`` [N, C] its mean colour (the DC band); ``mid`` and ``fine`` [B,1,H,W]
    its Weber luminance contrast (luma / instance mean luma - 1: no colour, no brightness) below and above the
    ``cell``-pixel scale."""
    index = as_index(segments)
    luma = luminance(image)
    mean_luma = paint(pool_instances(luma, index), index)
    contrast = (luma - mean_luma) / (mean_luma + CONTRAST_EPS)
    smooth = lowpass(contrast, cell)
    return {"coarse": pool_instances(image, index), "mid": smooth, "fine": contrast - smooth}
