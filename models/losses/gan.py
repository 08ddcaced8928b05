"""Adversarial losses over multi-scale discriminator outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synth.core.errors import OptionError

GAN_MODES = ("ls", "hinge", "vanilla")
DiscriminatorOutput = torch.Tensor | list[torch.Tensor] | list[list[torch.Tensor]]


class GANLoss(nn.Module):
    """'ls' (least squares, pix2pixHD default), 'hinge' or 'vanilla' (BCE on logits), summed over scales."""

    def __init__(self, mode: str = "ls") -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise OptionError(f"unknown GAN loss '{mode}'; choose one of: {', '.join(GAN_MODES)}")
        self.mode = mode

    def forward(self, preds: DiscriminatorOutput, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        """Loss of each scale's last output (the logits) against the real/fake target, summed over scales."""
        losses = [self._one_scale(logits, target_is_real, for_discriminator) for logits in _final_outputs(preds)]
        return torch.stack(losses).sum()

    def _one_scale(self, x: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        if self.mode == "hinge":
            if not for_discriminator:
                return -x.mean()
            return F.relu(1.0 - x).mean() if target_is_real else F.relu(1.0 + x).mean()
        target = x.new_full((), 1.0 if target_is_real else 0.0).expand_as(x)
        if self.mode == "ls":
            return F.mse_loss(x, target)
        return F.binary_cross_entropy_with_logits(x, target)


def _final_outputs(preds: DiscriminatorOutput) -> list[torch.Tensor]:
    """Each scale's prediction: the last element of each per-scale list (a bare tensor is one scale)."""
    if isinstance(preds, torch.Tensor):
        return [preds]
    return [scale[-1] if isinstance(scale, (list, tuple)) else scale for scale in preds]
