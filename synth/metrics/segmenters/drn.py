"""DRN-D-105 with the DRNSeg head (Yu, Koltun & Funkhouser, "Dilated Residual Networks", fyu/drn): the Cityscapes
segmenter of the pix2pixHD / SPADE / OASIS / ECGAN protocol.

Parameter names and shapes equal those of fyu/drn's ``DRNSeg('drn_d_105', 19)`` so that its published checkpoint
``drn-d-105_ms_cityscapes.pth`` loads without renaming: ``base.0`` .. ``base.8`` are DRN's ``layer0`` .. ``layer8``
(arch 'D': conv-BN-ReLU stems, bottleneck stages 3-6 with dilations 1/1/2/4, conv-BN-ReLU degridding layers 7-8),
``seg`` is the 1x1 classifier and ``up`` the fixed bilinear x8 transposed convolution. Input normalisation: the
Cityscapes mean/std of fyu/drn's ``datasets/cityscapes/info.json``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from synth.metrics.segmenters import SEGMENTERS, NormalizedSegmenter, load_exact, read_state_dict, require_file

DRN_WEIGHTS_FILE = "drn-d-105_ms_cityscapes.pth"
DRN_SOURCE = "the DRN-D-105 Cityscapes model linked in the README of github.com/fyu/drn"
CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)
#: DRN-D-105: blocks / convolutions per level and channels per level
DRN_D_105_LAYERS = (1, 1, 3, 4, 23, 3, 1, 1)
DRN_CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided / dilated) -> 1x1 residual block, 4x expansion."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(y + shortcut)


def _conv_bn_relu_stack(cin: int, cout: int, count: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """``count`` x [3x3 conv, BN, ReLU] (the first one strided), as DRN-D's levels 1, 2, 7 and 8."""
    mods: list[nn.Module] = []
    for i in range(count):
        mods += [
            nn.Conv2d(cin if i == 0 else cout, cout, 3, stride=stride if i == 0 else 1, padding=dilation,
                      dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*mods)


def _bottleneck_stage(inplanes: int, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    """A stage of bottlenecks; a 1x1 conv + BN shortcut on the first block when the shape changes."""
    out = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
    mods = [Bottleneck(inplanes, planes, stride, dilation, downsample)]
    mods += [Bottleneck(out, planes, 1, dilation) for _ in range(1, blocks)]
    return nn.Sequential(*mods)


def drn_d_base(layers: tuple[int, ...] = DRN_D_105_LAYERS, channels: tuple[int, ...] = DRN_CHANNELS) -> nn.Sequential:
    """DRN-D (bottleneck variant) without its classifier: levels 0..8 as one Sequential, output stride 8."""
    c = channels
    exp = Bottleneck.expansion
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, c[0], 7, padding=3, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True)),
        _conv_bn_relu_stack(c[0], c[0], layers[0]),
        _conv_bn_relu_stack(c[0], c[1], layers[1], stride=2),
        _bottleneck_stage(c[1], c[2], layers[2], stride=2, dilation=1),
        _bottleneck_stage(c[2] * exp, c[3], layers[3], stride=2, dilation=1),
        # levels 5 and 6 keep the resolution and dilate instead (new_level=False in fyu/drn: same dilation
        # in the first block as in the others)
        _bottleneck_stage(c[3] * exp, c[4], layers[4], stride=1, dilation=2),
        _bottleneck_stage(c[4] * exp, c[5], layers[5], stride=1, dilation=4),
        _conv_bn_relu_stack(c[5] * exp, c[6], layers[6], dilation=2),
        _conv_bn_relu_stack(c[6], c[7], layers[7], dilation=1),
    )


def _bilinear_kernel(up: nn.ConvTranspose2d) -> None:
    """Fill a depthwise transposed convolution with the bilinear interpolation kernel."""
    k = up.weight.shape[-1]
    f = math.ceil(k / 2)
    centre = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = 1 - (torch.arange(k, dtype=torch.float64) / f - centre).abs()
    with torch.no_grad():
        up.weight.copy_((ramp[:, None] * ramp[None, :]).to(up.weight.dtype).expand_as(up.weight))


class DRNSeg(nn.Module):
    """DRN base + 1x1 classifier + fixed bilinear x8 upsampling; returns logits (the original returns
    log-softmax too, which has the same argmax)."""

    def __init__(self, num_classes: int = 19, layers: tuple[int, ...] = DRN_D_105_LAYERS) -> None:
        super().__init__()
        self.base = drn_d_base(layers)
        out_dim = DRN_CHANNELS[-1]
        self.seg = nn.Conv2d(out_dim, num_classes, 1, bias=True)
        nn.init.normal_(self.seg.weight, 0, math.sqrt(2.0 / num_classes))
        nn.init.zeros_(self.seg.bias)
        self.up = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4, groups=num_classes,
                                     bias=False)
        _bilinear_kernel(self.up)
        self.up.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.seg(self.base(x)))


@SEGMENTERS.register("drn_d_105")
def build_drn_d_105(weights: str | None, num_classes: int = 19) -> nn.Module:
    """DRN-D-105 Cityscapes segmenter from ``drn-d-105_ms_cityscapes.pth`` (``random`` for tests only)."""
    path = None if weights == "random" else require_file(weights, DRN_WEIGHTS_FILE, "DRN-D-105 Cityscapes", DRN_SOURCE)
    net = DRNSeg(num_classes)
    if path is not None:
        load_exact(net, read_state_dict(path, "DRN-D-105"), path, "DRN-D-105 (DRNSeg) Cityscapes",
                  sync_bn_extras=True)
    return NormalizedSegmenter(net, CITYSCAPES_MEAN, CITYSCAPES_STD)
