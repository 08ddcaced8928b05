"""Self-conditioning pieces (Self-Conditioned GANs, Liu et al. 2022) for per-instance attributes.

An attribute's label ``t`` in [0, 1] is encoded over three bins (low, middle, high) with linear interpolation:
``t = 0 -> [1, 0, 0]``, ``t = 0.5 -> [0, 1, 0]``, ``t = 1 -> [0, 0, 1]``. The middle bin adds nothing; each end
has its own learned vector. A missing label (NaN) adds nothing and takes no part in the attribute loss.

``AttributeOffsets`` adds, to every instance's per-layer codes, its attributes' low/high vectors weighted by its
soft label; zero-initialised, so a model built on a pretrained generator starts exactly where it was.
``AttributeHead`` reads a discriminator's features, pools them inside each instance and predicts 3 logits per
attribute. Attribute ``a`` is column ``a`` of the label matrix and row ``a`` of the offsets and the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synth.models.networks.generator_modulated import Codes
from synth.models.networks.segments import SegmentIndex, pool_instances

LOW, MIDDLE, HIGH = 0, 1, 2


def soft_labels(labels: torch.Tensor) -> torch.Tensor:
    """[..., A] labels in [0, 1] (NaN: none) -> [..., A, 3] weights of the low, middle and high bins."""
    t = labels.clamp(0, 1)
    low = (1 - 2 * t).clamp(min=0)
    high = (2 * t - 1).clamp(min=0)
    weights = torch.stack([low, 1 - low - high, high], dim=-1)
    return torch.where(torch.isnan(labels).unsqueeze(-1), torch.zeros_like(weights), weights)


class AttributeOffsets(nn.Module):
    """Per attribute, learned low and high vectors over all layers' codes (zero at start), added per instance."""

    def __init__(self, num_codes: list[int], num_attributes: int) -> None:
        super().__init__()
        self.num_codes = list(num_codes)
        self.low = nn.Parameter(torch.zeros(num_attributes, sum(num_codes)))
        self.high = nn.Parameter(torch.zeros(num_attributes, sum(num_codes)))
        # Each attribute's definition (direction in code space, label range), so a checkpoint suffices for edits.
        self.register_buffer("normals", torch.zeros(num_attributes, sum(num_codes), dtype=torch.float64))
        self.register_buffer("intercepts", torch.zeros(num_attributes, dtype=torch.float64))
        self.register_buffer("lows", torch.zeros(num_attributes, dtype=torch.float64))
        self.register_buffer("highs", torch.ones(num_attributes, dtype=torch.float64))

    @property
    def num_attributes(self) -> int:
        return int(self.low.shape[0])

    def offsets(self, labels: torch.Tensor) -> torch.Tensor:
        """[N, A] labels -> [N, sum(num_codes)] offset of each instance."""
        weights = soft_labels(labels).to(self.low.dtype)
        return weights[..., LOW] @ self.low + weights[..., HIGH] @ self.high

    def forward(self, codes: Codes, labels: torch.Tensor) -> Codes:
        """``codes`` (one [N, num_codes[l]] tensor per layer) with each instance's attribute offsets added."""
        if labels.shape != (codes[0].shape[0], self.num_attributes):
            raise ValueError(f"expected labels of shape {(codes[0].shape[0], self.num_attributes)}, "
                             f"got {tuple(labels.shape)}")
        chunks = self.offsets(labels).split(self.num_codes, dim=1)
        return [code + chunk.to(code.dtype) for code, chunk in zip(codes, chunks, strict=True)]


class AttributeHead(nn.Module):
    """Mask-pooled discriminator features -> 3 logits (low, middle, high) per attribute and instance."""

    def __init__(self, channels: int, num_attributes: int) -> None:
        super().__init__()
        self.num_attributes = num_attributes
        self.linear = nn.Linear(channels, 3 * num_attributes)

    def forward(self, features: torch.Tensor, index: SegmentIndex) -> torch.Tensor:
        """[B, C, h, w] features and the batch's instances -> [N, A, 3] logits."""
        pooled = pool_instances(features.float(), index)
        return self.linear(pooled).view(-1, self.num_attributes, 3)


def attribute_kl(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(soft label || softmax(logits)) averaged over the labelled (instance, attribute) pairs; 0 when none."""
    target = soft_labels(labels)
    known = ~torch.isnan(labels)
    log_q = F.log_softmax(logits.float(), dim=-1)
    kl = (target * (torch.log(target.clamp(min=1e-12)) - log_q)).sum(-1)
    return torch.where(known, kl, torch.zeros_like(kl)).sum() / known.sum().clamp(min=1)
