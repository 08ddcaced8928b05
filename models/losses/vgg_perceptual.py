"""pix2pixHD's VGG19 perceptual loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synth.models.networks.vgg import VGG19Features

VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


class L1Distance(torch.autograd.Function):
    """``F.l1_loss(fake, real)``, the same value and the same gradient bit for bit, with the gradient made in
    ``fake``'s memory format and dtype in one pass: ``F.l1_loss``'s comes back contiguous and in fp32 under autocast,
    and adding that into a channels-last bf16 VGG19 backward cost more than the loss itself. Saves both inputs."""

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


class VGGLoss(nn.Module):
    """Weighted L1 between VGG19 relu1_1..relu5_1 features of fake and real.

    Images are fed as they are, in [-1, 1], with no ImageNet normalisation: that is what pix2pixHD does, and
    its lambda and trained models assume it. On the CPU VGG19 runs in channels-last memory: oneDNN's convolutions
    then need no reorders of the activations and max pooling is ~15x faster than on contiguous bf16 maps (the
    loss and its gradient 1.24x faster in bf16 at 512x256 on Zen 4, 1.09x in fp32; docs/benchmarks.md).
    """

    def __init__(self, vgg: VGG19Features) -> None:
        super().__init__()
        self.vgg = vgg

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        if fake.device.type == "cpu":
            fake, real = (x.contiguous(memory_format=torch.channels_last) for x in (fake, real))
        fake_features = self.vgg(fake)
        with torch.no_grad():
            real_features = self.vgg(real)
        losses = [
            weight * L1Distance.apply(f, r)
            for weight, f, r in zip(VGG_LAYER_WEIGHTS, fake_features, real_features, strict=True)
        ]
        return torch.stack(losses).sum()
