"""Instance-wise average pooling (pix2pixHD §3.4): every pixel of a segment gets the mean feature of its segment.

Vectorised with scatter-adds into a dense table of 2**16 slots per image (instance maps are 16-bit PNGs), so it
costs O(pixels) with no Python loop and no host synchronisation.
"""

from __future__ import annotations

import torch

#: Segment ids must be below this (16-bit instance maps; Cityscapes ids are class*1000+k <= 33999).
MAX_SEGMENT_ID = 1 << 16


def segment_slots(ids: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] segment ids -> flat [B*H*W] slot numbers, unique per (image, segment)."""
    batch = ids.shape[0]
    offsets = torch.arange(batch, device=ids.device).view(batch, 1, 1, 1) * MAX_SEGMENT_ID
    return (ids.long() + offsets).reshape(-1)


def segment_sums(values: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slot sums of ``values`` [B,C,H,W] over segments ``ids`` [B,1,H,W], and per-slot pixel counts.

    Returns ([B*2**16, C], [B*2**16]); slots of absent segments hold zeros."""
    batch, channels = values.shape[:2]
    slots = segment_slots(ids)
    flat = values.permute(0, 2, 3, 1).reshape(-1, channels)
    sums = flat.new_zeros(batch * MAX_SEGMENT_ID, channels).index_add_(0, slots, flat)
    counts = flat.new_zeros(batch * MAX_SEGMENT_ID).index_add_(0, slots, flat.new_ones(slots.shape[0]))
    return sums, counts


def instance_average_pool(features: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] features averaged inside each segment of ``ids`` [B,1,H,W] (ids in [0, 2**16)); differentiable."""
    sums, counts = segment_sums(features, ids)
    means = sums / counts.clamp(min=1).unsqueeze(1)
    batch, channels, height, width = features.shape
    pooled = means.index_select(0, segment_slots(ids))
    return pooled.view(batch, height, width, channels).permute(0, 3, 1, 2)
