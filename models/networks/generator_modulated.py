"""A style-modulated global generator: every normalisation layer takes per-instance, per-layer (gamma, beta) codes
broadcast through the instance masks (GH-Feat's "Y space", here one code per instance instead of per image).

Codes are a list with one tensor per modulated layer, ``codes[l]`` of shape ``[N, num_codes[l]]`` (gamma then
beta, ``num_codes[l] = 2 * channels``), whose rows follow ``index_segments(segments).keys``: the instances of
the batch sorted by (image, instance id). A layer's features ``x`` become ``norm(x) * (1 + gamma) + beta``.

Layer groups (one convention, used by the encoders, the GH-Feat model and ``synth.ghfeat``): a layer at
down-sampling level ``k`` (its resolution is the input's / 2**k) of a generator with ``n`` down-samplings is
``fine`` when 3k < n, ``coarse`` when 3k > 2n, else ``mid``. With n = 3: fine = full resolution (stem, last
up-sampling), mid = 1/2 and 1/4, coarse = 1/8 (last down-sampling and every residual block).

With ``texture=True`` (``--fourier_texture``) a last, fine layer replaces each instance's band of fixed Fourier
features by a per-instance sum of them (``fourier_texture``); its codes are those coefficients, not (gamma, beta),
and its number is a key of ``texture_banks``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from synth.core.errors import OptionError
from synth.models.networks.blocks import ReflectionPad2d, output_head
from synth.models.networks.fourier_texture import FourierBank, FourierTextureLayer
from synth.models.networks.norm import InstanceNorm2d
from synth.models.networks.segments import SegmentIndex, as_index, paint
from synth.models.registry import GENERATORS

GROUPS = ("coarse", "mid", "fine")
Codes = list[torch.Tensor]


def layer_group(level: int, n_downsampling: int) -> str:
    """The group of a layer at down-sampling ``level`` (see the module docstring)."""
    if 3 * level < n_downsampling:
        return "fine"
    if 3 * level > 2 * n_downsampling:
        return "coarse"
    return "mid"


def instance_weights(index: SegmentIndex, levels: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """Soft instance masks of levels 1..``levels``: ``[B,N,H/2**k,W/2**k]`` holding each instance's share of every
    cell (level 0, one instance per pixel, is painted apart: see ``modulations``). Level 1 adds a quarter per pixel into
    its cell, which equals average-pooling the full-resolution one-hot masks without building them."""
    ids = index.index[:, 0]
    batch, height, width = ids.shape
    h, w = height // 2, width // 2  # avg_pool2d's floor
    cells = ids[:, : 2 * h, : 2 * w].reshape(batch, h, 2, w, 2)
    position = cells * (h * w) + (torch.arange(h, device=ids.device)[:, None, None, None] * w
                                  + torch.arange(w, device=ids.device)[None, None, :, None])
    shares = torch.zeros(batch, index.count * h * w, dtype=dtype, device=ids.device)
    shares.scatter_add_(1, position.reshape(batch, -1), torch.full((1, 1), 0.25, dtype=dtype,
                                                                   device=ids.device).expand(batch, 4 * h * w))
    weights = [shares.view(batch, index.count, h, w)]
    for _ in range(levels - 1):
        weights.append(F.avg_pool2d(weights[-1], 2))
    return weights


def full_resolution_masks(index: SegmentIndex, dtype: torch.dtype) -> torch.Tensor:
    """Level 0's one-hot instance masks ``[B,N,H,W]``. Painting through them equals the gather exactly, forward and
    into the input; training keeps them because the codes' gradient then sums in the order the models were
    validated with (the gather's scatter-add order changes training's float noise; docs/benchmarks.md)."""
    batch = index.index.shape[0]
    one_hot = torch.zeros(batch, index.count, *index.index.shape[-2:], dtype=dtype, device=index.index.device)
    return one_hot.scatter_(1, index.index, 1.0)


class ModulatedNorm(nn.Module):
    """Parameter-free normalisation followed by ``x * (1 + gamma) + beta`` from a modulation map (or none)."""

    def __init__(self, channels: int, norm: str = "instance") -> None:
        super().__init__()
        if norm == "instance":
            self.norm: nn.Module = InstanceNorm2d(channels, affine=False)
        elif norm == "batch":
            self.norm = nn.BatchNorm2d(channels, affine=False)
        else:
            raise OptionError(f"the modulated generator takes --norm instance or batch, not '{norm}'")
        self.channels = channels
        self.layer_number = -1  # set by the generator that owns it

    def forward(self, x: torch.Tensor, modulation: torch.Tensor | None) -> torch.Tensor:
        x = self.norm(x)
        if modulation is None:
            return x
        gamma, beta = modulation.to(x.dtype).split(self.channels, dim=1)
        return x * (1 + gamma) + beta


class _ConvNormAct(nn.Module):
    """conv (or transposed conv), modulated norm, ReLU: one modulated layer."""

    def __init__(self, conv: nn.Module, channels: int, norm: str) -> None:
        super().__init__()
        self.conv, self.norm = conv, ModulatedNorm(channels, norm)

    def forward(self, x: torch.Tensor, modulate) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x), modulate(self.norm)))


class ModulatedResnetBlock(nn.Module):
    """pix2pixHD's residual block with both norms modulated."""

    def __init__(self, dim: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3))
        self.norm1 = ModulatedNorm(dim, norm)
        self.conv2 = nn.Sequential(ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3))
        self.norm2 = ModulatedNorm(dim, norm)

    def forward(self, x: torch.Tensor, modulate) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x), modulate(self.norm1)))
        return x + self.norm2(self.conv2(y), modulate(self.norm2))


@GENERATORS.register("modulated")
class ModulatedGenerator(nn.Module):
    """pix2pixHD's global generator (stem, down, residual blocks, up, head) with every norm modulated per instance.

    ``forward(x, segments, codes)``; with ``codes=None`` every modulation is zero (gamma = beta = 0). Per layer:
    ``layer_levels`` (down-sampling level), ``layer_channels``, ``num_codes`` (2 * channels) and ``layer_groups``;
    ``group_layers`` maps each group to its layer numbers. Input sizes must divide by ``size_multiple``.
    """

    def __init__(self, input_nc: int, output_nc: int, ngf: int = 64, n_downsampling: int = 3, n_blocks: int = 9,
                 norm: str = "instance", texture: bool = False) -> None:
        super().__init__()
        if n_downsampling < 2:
            raise OptionError("the modulated generator needs --n_downsample_global >= 2 (coarse, mid, fine groups)")
        self.size_multiple = 2**n_downsampling
        self.n_downsampling = n_downsampling
        width = ngf * 2**n_downsampling
        self.stem = _ConvNormAct(nn.Sequential(ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7)), ngf, norm)
        self.down = nn.ModuleList(
            _ConvNormAct(nn.Conv2d(ngf * 2**i, ngf * 2 ** (i + 1), 3, stride=2, padding=1), ngf * 2 ** (i + 1), norm)
            for i in range(n_downsampling)
        )
        self.blocks = nn.ModuleList(ModulatedResnetBlock(width, norm) for _ in range(n_blocks))
        self.up = nn.ModuleList(
            _ConvNormAct(nn.ConvTranspose2d(width // 2**i, width // 2 ** (i + 1), 3, stride=2, padding=1,
                                            output_padding=1), width // 2 ** (i + 1), norm)
            for i in range(n_downsampling)
        )
        self.head = output_head(ngf, output_nc)
        levels = [0, *range(1, n_downsampling + 1), *[n_downsampling] * (2 * n_blocks),
                  *range(n_downsampling - 1, -1, -1)]
        norms = [self.stem.norm, *(s.norm for s in self.down), *(n for b in self.blocks for n in (b.norm1, b.norm2)),
                 *(s.norm for s in self.up)]
        cell = self.size_multiple
        self.texture = FourierTextureLayer(FourierBank.for_cell(cell), cell) if texture else None
        if self.texture is not None:
            levels.append(0)
            norms.append(self.texture)
        for number, norm_layer in enumerate(norms):  # on the module itself: survives deepcopy and pickling
            norm_layer.layer_number = number
        self.texture_banks = {self.texture.layer_number: self.texture.bank} if self.texture is not None else {}
        self.layer_levels = levels
        self.layer_channels = [n.channels for n in norms]
        self.num_codes = [2 * c for c in self.layer_channels]
        self.layer_groups = [layer_group(k, n_downsampling) for k in levels]
        self.group_layers = {g: [i for i, name in enumerate(self.layer_groups) if name == g] for g in GROUPS}

    @classmethod
    def from_options(cls, opt: Any, input_nc: int) -> ModulatedGenerator:
        """Build from parsed options (ngf, n_downsample_global, n_blocks_global, norm, output_nc, fourier_texture)."""
        return cls(input_nc, opt.output_nc, opt.ngf, opt.n_downsample_global, opt.n_blocks_global, opt.norm,
                   getattr(opt, "fourier_texture", False))

    def modulations(self, segments: torch.Tensor | SegmentIndex, codes: Codes, dtype: torch.dtype):
        """A function ``norm -> [B, 2C, h, w]`` map painting each instance's code of that layer over its mask."""
        if len(codes) != len(self.num_codes):
            raise ValueError(f"expected {len(self.num_codes)} per-layer codes, got {len(codes)}")
        index = as_index(segments)
        weights = instance_weights(index, self.n_downsampling, dtype)  # one numbering per step

        full_masks: list[torch.Tensor] = []  # level 0's one-hot masks, built only when the codes need gradients

        def modulate(norm: ModulatedNorm) -> torch.Tensor:
            layer, level = norm.layer_number, self.layer_levels[norm.layer_number]
            code = codes[layer].to(dtype)
            if level > 0:
                return torch.einsum("bnhw,nc->bchw", weights[level - 1], code)
            if not (torch.is_grad_enabled() and code.requires_grad):
                return paint(code, index)  # one instance per pixel: a gather, O(H*W*C) instead of O(N*H*W*C)
            if not full_masks:
                full_masks.append(full_resolution_masks(index, dtype))
            return torch.einsum("bnhw,nc->bchw", full_masks[0], code)

        return modulate

    def forward(self, x: torch.Tensor, segments: torch.Tensor | SegmentIndex | None = None,
                codes: Codes | None = None) -> torch.Tensor:
        """Layout input [B,input_nc,H,W], instance ids [B,1,H,W] (or their ``SegmentIndex``) and per-layer codes ->
        image in [-1, 1]."""
        if codes is None or segments is None:
            def modulate(norm: ModulatedNorm) -> None:
                return None
        else:
            segments = as_index(segments)
            modulate = self.modulations(segments, codes, x.dtype)
        x = self.stem(x, modulate)
        for stage in self.down:
            x = stage(x, modulate)
        for block in self.blocks:
            x = block(x, modulate)
        for stage in self.up:
            x = stage(x, modulate)
        image = self.head(x)
        if self.texture is None or codes is None or segments is None:
            return image
        return self.texture(image, segments, codes[self.texture.layer_number])


def group_slices(codes: Codes, layers: list[int]) -> torch.Tensor:
    """The codes of ``layers`` concatenated per instance: [N, sum of their num_codes]."""
    return torch.cat([codes[i] for i in layers], dim=1)
