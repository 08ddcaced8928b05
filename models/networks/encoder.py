"""pix2pixHD's instance feature encoder E: an encoder-decoder over the real image whose output (``feat_num``
channels, tanh) is averaged inside each instance, so each object carries one low-dimensional texture code."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from synth.models.networks.generator_global import GlobalGenerator
from synth.models.networks.instance_pool import instance_average_pool
from synth.models.registry import ENCODERS


@ENCODERS.register("instance")
class InstanceEncoder(nn.Module):
    """Same layers as pix2pixHD's ``Encoder`` (a global generator trunk with no residual blocks), then pooling."""

    def __init__(self, input_nc: int = 3, feat_num: int = 3, nef: int = 16, n_downsampling: int = 4,
                 norm: str = "instance") -> None:
        super().__init__()
        self.net = GlobalGenerator(input_nc, feat_num, nef, n_downsampling, n_blocks=0, norm=norm)
        self.size_multiple = self.net.size_multiple

    @classmethod
    def from_options(cls, opt: Any, input_nc: int) -> InstanceEncoder:
        """Build from parsed options (feat_num, nef, n_downsample_E, norm)."""
        return cls(input_nc, opt.feat_num, opt.nef, opt.n_downsample_E, opt.norm)

    def forward(self, image: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] image and [B,1,H,W] segment ids -> [B,feat_num,H,W], constant inside each segment."""
        return instance_average_pool(self.net(image), segments)
