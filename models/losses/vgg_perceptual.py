"""pix2pixHD's VGG19 perceptual loss."""

from __future__ import annotations

import torch
from torch import nn

from synth.models.losses.l1 import L1Distance
from synth.models.networks.vgg import VGG19Features

VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


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
