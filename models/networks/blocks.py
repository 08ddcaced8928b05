"""Building blocks shared by the generators: residual block and the down/up-sampling stages."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from synth.models.networks.norm import norm_layer
from synth.models.networks.onehot_conv import OneHotConv2d
from synth.models.networks.winograd import Conv3x3

NormFactory = Callable[[int], nn.Module]


class ReflectionPad2d(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` that keeps its input's dtype under autocast. CPU autocast runs reflection_pad2d in
    fp32, so each bf16 activation would be copied to fp32 and back to bf16 by the next convolution; padding only
    copies values, so the forward result is the same, at a third of the memory traffic (state-dict keys unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            return super().forward(x)
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x)


class ResnetBlock(nn.Module):
    """pix2pixHD residual block: x + [pad, conv3, norm, relu, (dropout,) pad, conv3, norm](x), at constant width.

    ``dropout`` > 0 puts nn.Dropout where pix2pixHD's ResnetBlock(use_dropout=True) has it (``--use_dropout``)."""

    def __init__(self, dim: int, norm: str = "instance", dropout: float = 0.0) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        self.body = nn.Sequential(
            ReflectionPad2d(1),
            Conv3x3(dim, dim),
            make_norm(dim),
            nn.ReLU(inplace=True),
            *([nn.Dropout(dropout)] if dropout > 0 else []),
            ReflectionPad2d(1),
            Conv3x3(dim, dim),
            make_norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def input_stem(in_channels: int, out_channels: int, make_norm: NormFactory, label_channels: int = 0) -> nn.Sequential:
    """The 7x7 reflection-padded input convolution: pad, conv7, norm, relu. With ``label_channels`` (the input's
    leading one-hot channels) the convolution gathers their weights on the CPU (``OneHotConv2d``)."""
    return nn.Sequential(
        ReflectionPad2d(3),
        OneHotConv2d(in_channels, out_channels, 7, label_channels) if label_channels
        else nn.Conv2d(in_channels, out_channels, kernel_size=7),
        make_norm(out_channels),
        nn.ReLU(inplace=True),
    )


def downsample_stage(channels: int, make_norm: NormFactory) -> nn.Sequential:
    """Halve the resolution and double the width: conv3 stride 2, norm, relu."""
    return nn.Sequential(
        nn.Conv2d(channels, channels * 2, kernel_size=3, stride=2, padding=1),
        make_norm(channels * 2),
        nn.ReLU(inplace=True),
    )


def upsample_stage(channels: int, make_norm: NormFactory) -> nn.Sequential:
    """Double the resolution and halve the width: transposed conv3 stride 2, norm, relu."""
    return nn.Sequential(
        nn.ConvTranspose2d(channels, channels // 2, kernel_size=3, stride=2, padding=1, output_padding=1),
        make_norm(channels // 2),
        nn.ReLU(inplace=True),
    )


def output_head(in_channels: int, out_channels: int) -> nn.Sequential:
    """The image head: pad, conv7, tanh, so outputs lie in [-1, 1]."""
    return nn.Sequential(ReflectionPad2d(3), nn.Conv2d(in_channels, out_channels, kernel_size=7), nn.Tanh())
