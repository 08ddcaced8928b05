"""pix2pixHD's discriminators: an N-layer PatchGAN and a stack of them at several input scales."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from synth.models.networks.norm import norm_layer
from synth.models.registry import DISCRIMINATORS

KERNEL = 4
PADDING = 2
MAX_WIDTH = 512


class NLayerDiscriminator(nn.Module):
    """PatchGAN as a list of stages (``layers``); returns every stage's output, or only the logits.

    The structure is the same with or without intermediate features, so checkpoints are interchangeable;
    there is no sigmoid (the vanilla GAN loss works on logits).
    """

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        get_interm_feat: bool = True,
    ) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        self.get_interm_feat = get_interm_feat
        stages = [nn.Sequential(_conv(input_nc, ndf, stride=2), nn.LeakyReLU(0.2, inplace=True))]
        width = ndf
        for index in range(1, n_layers + 1):
            previous, width = width, min(width * 2, MAX_WIDTH)
            stride = 2 if index < n_layers else 1
            stages.append(
                nn.Sequential(_conv(previous, width, stride), make_norm(width), nn.LeakyReLU(0.2, inplace=True))
            )
        stages.append(nn.Sequential(_conv(width, 1, stride=1)))
        self.layers = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for stage in self.layers:
            x = stage(x)
            outputs.append(x)
        return outputs if self.get_interm_feat else [x]


def _conv(in_channels: int, out_channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=KERNEL, stride=stride, padding=PADDING)


@DISCRIMINATORS.register("multiscale")
class MultiscaleDiscriminator(nn.Module):
    """``scales[0]`` sees the full-resolution input, ``scales[i]`` the input average-pooled i times."""

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        num_D: int = 3,
        get_interm_feat: bool = True,
    ) -> None:
        super().__init__()
        self.num_D = num_D
        self.scales = nn.ModuleList(
            NLayerDiscriminator(input_nc, ndf, n_layers, norm, get_interm_feat) for _ in range(num_D)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @classmethod
    def from_options(cls, opt: Any, input_nc: int) -> MultiscaleDiscriminator:
        """Build from parsed options (ndf, n_layers_D, num_D, norm, no_ganFeat_loss)."""
        return cls(input_nc, opt.ndf, opt.n_layers_D, opt.norm, opt.num_D, not opt.no_ganFeat_loss)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """One list per scale, full resolution first; each the stage outputs with the logits last. On the CPU in
        channels-last memory: oneDNN's convolutions then reorder no activations (a pix2pixHD bf16 step at 512x256
        1.04-1.06x faster on Zen 4, with the feature-matching gradient kept in that layout; docs/benchmarks.md)."""
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        results = []
        for index, scale in enumerate(self.scales):
            if index > 0:
                x = self.downsample(x)
            results.append(scale(x))
        return results
