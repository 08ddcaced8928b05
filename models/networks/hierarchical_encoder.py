"""Encoders from an image and its instance map to the modulated generator's per-instance, per-layer codes.

``HierarchicalEncoder`` is GH-Feat's encoder for layouts: a small ResNet with a feature pyramid (FPN); at each of
its three levels the features are average-pooled inside every instance; the deepest level's instance vector is
added into the two shallower ones; heads map the deepest level to the coarse layers' codes, the middle one to the
mid layers' and the shallowest to the fine layers' (groups as in ``generator_modulated``).

``PooledCodeEncoder`` is GH-Feat's baseline: pix2pixHD's instance encoder (one pooled ``feat_num``-vector per
instance) followed by one affine map per layer.

``BandCodeEncoder`` is the modulated model's own encoder, which decides what each layer group of the generator
learns to control: every group's codes come from one spatial-frequency band of the instance only (coarse: its mean
colour, the lowest band; mid: luminance contrast coarser than the generator's coarsest cell; fine: the contrast
finer than that), so the coarse layers own colour and the fine ones texture (``docs/ghfeat.md``). The coarse vector
keeps brightness apart from chromaticity: its last coordinate is the mean colour's log brightness (HSV value, the
max channel) and the others see only the brightness-free chromaticity, so brightness is a scale and a brightness
edit is a move along one coordinate that leaves hue alone (``docs/selfcond.md``).

Both return codes as ``generator_modulated`` defines them: ``codes[l]`` is ``[N, num_codes[l]]``, rows ordered
like ``index_segments(segments).keys``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synth.models.networks.fourier_texture import FourierBank, fourier_coefficients
from synth.models.networks.generator_global import GlobalGenerator
from synth.models.networks.generator_modulated import GROUPS, Codes
from synth.models.networks.segments import SegmentIndex, as_index, frequency_bands, pool_instances

#: The pyramid level (0 shallowest) whose instance vectors feed each group's head.
GROUP_LEVEL = {"fine": 0, "mid": 1, "coarse": 2}


class _ResidualBlock(nn.Module):
    """Normalisation-free basic block (two 3x3 convs, leaky ReLU); stride 2 halves the size with a 1x1 skip.

    No normalisation: per-image statistics would wash out absolute colour, which the codes must keep. Instead the
    residual branch is scaled by a learned gain that starts at 0 (SkipInit, De & Smith 2020): without it the
    activations grow block by block and Adam at lr 2e-3 blows the encoder up within a few hundred steps."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=stride) if stride != 1 or in_channels != \
            out_channels else nn.Identity()
        self.gain = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(x), 0.2))
        return F.leaky_relu(self.skip(x) + self.gain * y, 0.2)


class HierarchicalEncoder(nn.Module):
    """ResNet backbone (levels at 1/2, 1/4, 1/8) + FPN + per-instance pooling per level + per-group heads.

    With ``group_dim`` > 0 each head emits a ``group_dim``-vector that per-layer affine maps (``affines``, meant to
    be the generator's own, loaded frozen) turn into the group's codes: the codes stay in the span G was trained on.
    A Fourier texture layer's codes (``banks``: {layer: its bank}) are read off a full-resolution map, the fine band
    plus a learned correction (``texture_correction``, zero at the start), by ``fourier_coefficients``: a head on pooled
    vectors cannot see phase.
    """

    def __init__(self, input_nc: int, num_codes: list[int], layer_groups: list[str], width: int = 32,
                 group_dim: int = 0, banks: dict[int, FourierBank] | None = None, cell: int = 8) -> None:
        super().__init__()
        self.num_codes, self.layer_groups = list(num_codes), list(layer_groups)
        self.banks, self.cell = dict(banks or {}), cell
        self.texture_map = texture_correction(input_nc, width) if self.banks else None
        self.stem = nn.Sequential(nn.Conv2d(input_nc, width, 3, padding=1), nn.LeakyReLU(0.2))
        widths = [width, 2 * width, 4 * width]
        self.stages = nn.ModuleList()
        previous = width
        for channels in widths:
            self.stages.append(nn.Sequential(_ResidualBlock(previous, channels, 2),
                                             _ResidualBlock(channels, channels, 1)))
            previous = channels
        pyramid = 2 * width
        self.lateral = nn.ModuleList(nn.Conv2d(c, pyramid, 1) for c in widths)
        self.smooth = nn.ModuleList(nn.Conv2d(pyramid, pyramid, 3, padding=1) for _ in widths)
        self.group_layers = code_group_layers(layer_groups, self.banks)
        self.heads = nn.ModuleDict({
            g: nn.Sequential(nn.Linear(pyramid, pyramid), nn.LeakyReLU(0.2),
                             nn.Linear(pyramid, group_dim or sum(self.num_codes[i] for i in layers)))
            for g, layers in self.group_layers.items() if layers
        })
        self.mean_colour = nn.Linear(input_nc, pyramid)
        self.affines = layer_affines(group_dim, self.num_codes, self.banks) if group_dim else None
        if group_dim:  # start every group vector at 0, the middle of its range, not where tanh saturates
            for head in self.heads.values():
                nn.init.zeros_(head[-1].weight)
                nn.init.zeros_(head[-1].bias)

    def pyramid(self, image: torch.Tensor) -> list[torch.Tensor]:
        """FPN outputs, shallowest (1/2) first; any input size (upsampling follows the lateral's size)."""
        x = self.stem(image)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        top = self.lateral[-1](features[-1])
        outputs = [self.smooth[-1](top)]
        for level in range(len(features) - 2, -1, -1):
            lateral = self.lateral[level](features[level])
            top = lateral + F.interpolate(top, size=lateral.shape[-2:], mode="nearest")
            outputs.insert(0, self.smooth[level](top))
        return outputs

    def instance_vectors(self, image: torch.Tensor, segments: torch.Tensor | SegmentIndex) -> list[torch.Tensor]:
        """[N, pyramid width] per level, the deepest level's vector added into the shallower ones."""
        index = as_index(segments)
        pooled = [pool_instances(level, index) for level in self.pyramid(image)]
        return [v + pooled[-1] for v in pooled[:-1]] + [pooled[-1]]

    def head_input(self, group: str, vectors: list[torch.Tensor], image: torch.Tensor, index: SegmentIndex
                   ) -> torch.Tensor:
        """The group's level's instance vectors; the coarse head also gets each instance's mean colour (the DC band
        that G's coarse codes carry), which the deepest level, at 1/8 of the image, mixes with the background's."""
        vector = vectors[GROUP_LEVEL[group]]
        if group == "coarse":
            vector = vector + self.mean_colour(pool_instances(image, index))
        return vector

    def forward(self, image: torch.Tensor, segments: torch.Tensor | SegmentIndex) -> Codes:
        """[B,3,H,W] image and [B,1,H,W] instance ids (or their ``SegmentIndex``) -> per-layer codes."""
        index = as_index(segments)
        vectors = self.instance_vectors(image, index)
        codes: list[torch.Tensor | None] = [None] * len(self.num_codes)
        if self.texture_map is not None:
            signal = frequency_bands(image, index, self.cell)["fine"] + self.texture_map(image)
            for layer, bank in self.banks.items():
                codes[layer] = fourier_coefficients(signal, index, bank)
        for group, layers in self.group_layers.items():
            if not layers:
                continue
            out = self.heads[group](self.head_input(group, vectors, image, index))
            if self.affines is not None:  # group vectors in [-1, 1], the range G was trained on
                for layer in layers:
                    codes[layer] = self.affines[layer](torch.tanh(out))
                continue
            for layer, chunk in zip(layers, out.split([self.num_codes[i] for i in layers], dim=1), strict=True):
                codes[layer] = chunk
        return codes  # type: ignore[return-value]


def code_group_layers(layer_groups: list[str], banks: dict[int, FourierBank]) -> dict[str, list[int]]:
    """Layer numbers of each group whose codes an encoder derives from that group's vector: every layer but the
    texture layers (``banks``), whose codes are read off the image as Fourier coefficients."""
    return {g: [i for i, name in enumerate(layer_groups) if name == g and i not in banks] for g in GROUPS}


def texture_correction(input_nc: int, width: int) -> nn.Sequential:
    """A learned full-resolution correction to the fine band, zero at the start. It has its own convolutions: the
    least-squares read-out's gradients are not sent into the backbone shared by every group."""
    net = nn.Sequential(nn.Conv2d(input_nc, width, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(width, 1, 1))
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


def layer_affines(dim: int, num_codes: list[int], banks: dict[int, FourierBank]) -> nn.ModuleList:
    """One affine map ``dim -> num_codes[l]`` per layer; a texture layer's place holds a parameter-free identity
    (its codes are Fourier coefficients, not a map of a group vector), so layer numbers index the list."""
    return nn.ModuleList(nn.Identity() if layer in banks else nn.Linear(dim, n) for layer, n in enumerate(num_codes))


class PooledCodeEncoder(nn.Module):
    """pix2pixHD's instance encoder (``feat_num`` channels, average-pooled per instance) + per-layer affine maps."""

    def __init__(self, input_nc: int, num_codes: list[int], feat_num: int = 8, nef: int = 16,
                 n_downsampling: int = 3, norm: str = "instance") -> None:
        super().__init__()
        self.net = GlobalGenerator(input_nc, feat_num, nef, n_downsampling, n_blocks=0, norm=norm)
        self.size_multiple = self.net.size_multiple
        self.affines = nn.ModuleList(nn.Linear(feat_num, n) for n in num_codes)

    def instance_vectors(self, image: torch.Tensor, segments: torch.Tensor | SegmentIndex) -> torch.Tensor:
        """[N, feat_num]: the encoder's output averaged inside each instance."""
        return pool_instances(self.net(image), as_index(segments))

    def forward(self, image: torch.Tensor, segments: torch.Tensor | SegmentIndex) -> Codes:
        vectors = self.instance_vectors(image, segments)
        return [affine(vectors) for affine in self.affines]


# ----- the modulated model's own encoder: one frequency band per layer group ------------------------------------

#: Darkest brightness the brightness coordinate tells apart (log2: -6), and the octaves mapped onto [-1, 1].
BRIGHTNESS_FLOOR, BRIGHTNESS_OCTAVES = 1 / 64, 6.0


def brightness_coordinate(brightness: torch.Tensor) -> torch.Tensor:
    """Brightness in [0, 1] -> log2 brightness mapped onto [-1, 1] (1/64 -> -1, 1 -> ~1): scaling a colour by k
    moves it by log2(k) / 3."""
    return (1 + 2 * torch.log2(brightness.clamp(min=0) + BRIGHTNESS_FLOOR) / BRIGHTNESS_OCTAVES).clamp(-1, 1)


def chromaticity(colour: torch.Tensor, brightness: torch.Tensor) -> torch.Tensor:
    """[N, C] colour in [0, 1] and [N, 1] its brightness -> the colour's deviation from grey relative to its
    brightness: unchanged when the colour is scaled (for brightness well above ``BRIGHTNESS_FLOOR``)."""
    return (colour - brightness) / (brightness + BRIGHTNESS_FLOOR)


class BandCodeEncoder(nn.Module):
    """Per-group codes from per-group bands: an MLP on the mean colour (coarse) and pix2pixHD's instance encoder
    + per-layer affines on each contrast band (mid, fine); a group never sees another group's band."""

    def __init__(self, input_nc: int, num_codes: list[int], layer_groups: list[str], cell: int, feat_num: int = 8,
                 nef: int = 16, n_downsampling: int = 3, norm: str = "instance",
                 banks: dict[int, FourierBank] | None = None) -> None:
        super().__init__()
        self.num_codes, self.cell = list(num_codes), cell
        self.banks = dict(banks or {})
        self.group_layers = code_group_layers(layer_groups, self.banks)
        if feat_num < 2:
            raise ValueError("BandCodeEncoder needs feat_num >= 2 (chromaticity and brightness)")
        self.chroma = nn.Sequential(nn.Linear(input_nc, 4 * feat_num), nn.LeakyReLU(0.2),
                                    nn.Linear(4 * feat_num, feat_num - 1), nn.Tanh())
        self.texture = nn.ModuleDict({g: GlobalGenerator(1, feat_num, nef, n_downsampling, n_blocks=0, norm=norm)
                                        for g in ("mid", "fine")})
        self.size_multiple = 2**n_downsampling
        self.affines = layer_affines(feat_num, self.num_codes, self.banks)

    def group_vectors(self, image: torch.Tensor, segments: torch.Tensor | SegmentIndex,
                      bands: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """[N, feat_num] per group in [-1, 1], each computed from that group's band only (``bands``: the image's
        ``frequency_bands`` when the caller has them already); with a Fourier texture layer also ``texture``, the
        fine band's coefficients in G's bank [N, 2K]."""
        index = as_index(segments)
        bands = bands if bands is not None else frequency_bands(image, index, self.cell)
        vectors = {"coarse": self.colour_vector(bands["coarse"])}
        for group, net in self.texture.items():
            vectors[group] = pool_instances(net(bands[group]), index)
        for bank in self.banks.values():  # one bank: every texture layer takes the same coefficients
            vectors["texture"] = fourier_coefficients(bands["fine"], index, bank)
        return vectors

    def colour_vector(self, mean_colour: torch.Tensor) -> torch.Tensor:
        """[N, C] mean colours in [-1, 1] -> [N, feat_num] coarse vectors: an MLP of the chromaticity, then the
        brightness coordinate of the HSV value (fixed, not learned, so that it means the same in every run)."""
        unit = (mean_colour + 1) / 2
        value = unit.amax(dim=1, keepdim=True)
        return torch.cat([self.chroma(chromaticity(unit, value)), brightness_coordinate(value)], dim=1)

    def codes_of(self, vectors: dict[str, torch.Tensor]) -> Codes:
        """Per-layer codes from per-group vectors (each layer's affine map of its group's vector)."""
        codes: list[torch.Tensor | None] = [None] * len(self.num_codes)
        for group, layers in self.group_layers.items():
            for layer in layers:
                codes[layer] = self.affines[layer](vectors[group])
        for layer in self.banks:
            codes[layer] = vectors["texture"]
        return codes  # type: ignore[return-value]

    def forward(self, image: torch.Tensor, segments: torch.Tensor | SegmentIndex) -> Codes:
        return self.codes_of(self.group_vectors(image, segments))
