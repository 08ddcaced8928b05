"""Turning label and instance maps into network inputs; plain tensor ops, so they run on any device."""

from __future__ import annotations

import torch


def effective_label_nc(label_nc: int, contain_dontcare_label: bool) -> int:
    """Number of one-hot channels: ``label_nc`` plus one when a don't-care channel (index ``label_nc``) is added."""
    return label_nc + 1 if contain_dontcare_label else label_nc


def one_hot(label: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Scatter a [B,1,H,W] class-id map into a [B,num_classes,H,W] one-hot tensor on the label's device."""
    if label.dim() != 4 or label.size(1) != 1:
        raise ValueError(f"one_hot expects a label map of shape [B,1,H,W], got {list(label.shape)}")
    b, _, h, w = label.shape
    out = torch.zeros(b, num_classes, h, w, dtype=dtype, device=label.device)
    return out.scatter_(1, label.long(), 1)


def instance_boundaries(inst: torch.Tensor) -> torch.Tensor:
    """1.0 where a left/right/up/down neighbour has another instance id, else 0.0 (both sides of an edge)."""
    if inst.dim() != 4 or inst.size(1) != 1:
        raise ValueError(f"instance_boundaries expects an instance map of shape [B,1,H,W], got {list(inst.shape)}")
    edge = torch.zeros_like(inst, dtype=torch.bool)
    horizontal = inst[..., :, 1:] != inst[..., :, :-1]
    edge[..., :, 1:] |= horizontal
    edge[..., :, :-1] |= horizontal
    vertical = inst[..., 1:, :] != inst[..., :-1, :]
    edge[..., 1:, :] |= vertical
    edge[..., :-1, :] |= vertical
    return edge.float()
