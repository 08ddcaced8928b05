"""The L1 distance of the perceptual and feature-matching losses, with a gradient in its input's layout."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class L1Distance(torch.autograd.Function):
    """``F.l1_loss(fake, real)``, the same value and the same gradient bit for bit, with the gradient made in
    ``fake``'s memory format and dtype in one pass: ``F.l1_loss``'s comes back contiguous and in fp32 under autocast,
    and adding that into a channels-last bf16 backward (VGG19's, D's) cost more than the loss itself. Saves both
    inputs."""

    @staticmethod
    def forward(ctx, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(fake, real)
        wide = torch.promote_types(torch.promote_types(fake.dtype, real.dtype), torch.float32)
        with torch.autocast(fake.device.type, enabled=False):
            return F.l1_loss(fake.to(wide), real.to(wide))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        fake, real = ctx.saved_tensors
        # sgn(fake - real) is exact in any dtype (a difference of two floats is zero only when they are equal), and
        # grad / n is rounded once into fake's dtype, as F.l1_loss's gradient is when autocast casts it back
        grad_fake = torch.sub(fake, real).sgn_().mul_((grad / fake.numel()).to(fake.dtype)).to(fake.dtype)
        return grad_fake, (-grad_fake).to(real.dtype) if ctx.needs_input_grad[1] else None
