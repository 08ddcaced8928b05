"""pix2pixHD's global generator: a ResNet encoder-decoder from label maps to images."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from synth.data.preprocess import effective_label_nc
from synth.models.networks.blocks import ResnetBlock, downsample_stage, input_stem, output_head, upsample_stage
from synth.models.networks.norm import norm_layer
from synth.models.registry import GENERATORS


def one_hot_channels(opt: Any) -> int:
    """How many leading channels of G's input are one-hot labels: label_nc (+1 don't-care); 0 for raw inputs."""
    if not getattr(opt, "label_nc", 0):
        return 0
    return effective_label_nc(opt.label_nc, getattr(opt, "contain_dontcare_label", False))


def dropout_of(opt: Any) -> float:
    """The residual blocks' dropout: pix2pixHD's p = 0.5 with ``--use_dropout``, none otherwise."""
    return 0.5 if getattr(opt, "use_dropout", False) else 0.0


@GENERATORS.register("global")
class GlobalGenerator(nn.Module):
    """stem -> down (n_downsampling stages) -> blocks (residual) -> up -> head; layer for layer pix2pixHD's.

    ``with_head=False`` leaves out the image head (an Identity), for the local enhancer that reuses the trunk.
    ``label_channels``: how many leading input channels are one-hot labels (the stem gathers their weights on the
    CPU when they are). Input height and width must be divisible by ``size_multiple``.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        n_downsampling: int = 3,
        n_blocks: int = 9,
        norm: str = "instance",
        *,
        with_head: bool = True,
        dropout: float = 0.0,
        label_channels: int = 0,
    ) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        self.size_multiple = 2**n_downsampling
        width = ngf * 2**n_downsampling
        self.stem = input_stem(input_nc, ngf, make_norm, label_channels)
        self.down = nn.Sequential(*[downsample_stage(ngf * 2**i, make_norm) for i in range(n_downsampling)])
        self.blocks = nn.Sequential(*[ResnetBlock(width, norm, dropout) for _ in range(n_blocks)])
        self.up = nn.Sequential(*[upsample_stage(width // 2**i, make_norm) for i in range(n_downsampling)])
        self.head = output_head(ngf, output_nc) if with_head else nn.Identity()

    @classmethod
    def from_options(cls, opt: Any, input_nc: int) -> GlobalGenerator:
        """Build from parsed options (ngf, n_downsample_global, n_blocks_global, norm, output_nc, use_dropout,
        label_nc: the input's one-hot channels)."""
        return cls(
            input_nc, opt.output_nc, opt.ngf, opt.n_downsample_global, opt.n_blocks_global, opt.norm,
            dropout=dropout_of(opt), label_channels=one_hot_channels(opt),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's output (ngf channels, input resolution) before the image head."""
        return self.up(self.blocks(self.down(self.stem(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
