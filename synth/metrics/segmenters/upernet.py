"""UPerNet on ResNet-101 (Xiao et al., "Unified Perceptual Parsing"; CSAILVision/semantic-segmentation-pytorch's
``ade20k-resnet101-upernet``): the ADE20K segmenter of the SPADE / OASIS / ECGAN protocol.

Parameter names and shapes equal CSAILVision's saved ``encoder_epoch_50.pth`` (their ``Resnet`` wrapper of a
deep-stem ResNet-101: conv1/bn1 (3->64, stride 2), conv2/bn2 (64->64), conv3/bn3 (64->128), then layer1..layer4 of
bottlenecks) and ``decoder_epoch_50.pth`` (their ``UPerNet`` with ``fpn_dim=512``: ppm_conv, ppm_last_conv,
fpn_in, fpn_out, conv_last), so both load without renaming. Input: RGB normalised with the ImageNet mean/std;
logits come at 1/4 resolution and are resized bilinearly to the input size.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from synth.core.errors import WeightsMissingError
from synth.metrics.segmenters import (
    SEGMENTERS,
    NormalizedSegmenter,
    default_weights_path,
    load_exact,
    read_state_dict,
)

UPERNET_MODEL = "ade20k-resnet101-upernet"
ENCODER_FILE = "encoder_epoch_50.pth"
DECODER_FILE = "decoder_epoch_50.pth"
UPERNET_SOURCE = f"http://sceneparsing.csail.mit.edu/model/pytorch/{UPERNET_MODEL}/"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET101_LAYERS = (3, 4, 23, 3)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 residual block, 4x expansion."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    out = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
    return nn.Sequential(Bottleneck(inplanes, planes, stride, downsample),
                         *[Bottleneck(out, planes) for _ in range(1, blocks)])


class ResNetEncoder(nn.Module):
    """Deep-stem ResNet (three 3x3 convolutions) returning the outputs of layer1..layer4 (strides 4..32)."""

    def __init__(self, layers: tuple[int, ...] = RESNET101_LAYERS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.relu3 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _stage(128, 64, layers[0], 1)
        self.layer2 = _stage(256, 128, layers[1], 2)
        self.layer3 = _stage(512, 256, layers[2], 2)
        self.layer4 = _stage(1024, 512, layers[3], 2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.maxpool(self.relu3(self.bn3(self.conv3(x))))
        feats = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            feats.append(x)
        return feats


def _cbr(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    """Conv (no bias) + BN + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class UPerNetDecoder(nn.Module):
    """Pyramid pooling on the top feature, a top-down FPN over the others, fusion of all levels, 1x1 classifier."""

    def __init__(self, num_classes: int = 150, fc_dim: int = 2048, pool_scales: tuple[int, ...] = (1, 2, 3, 6),
                 fpn_inplanes: tuple[int, ...] = (256, 512, 1024, 2048), fpn_dim: int = 512) -> None:
        super().__init__()
        self.ppm_pooling = nn.ModuleList(nn.AdaptiveAvgPool2d(s) for s in pool_scales)
        self.ppm_conv = nn.ModuleList(_cbr(fc_dim, 512, kernel=1) for _ in pool_scales)
        self.ppm_last_conv = _cbr(fc_dim + len(pool_scales) * 512, fpn_dim)
        self.fpn_in = nn.ModuleList(_cbr(c, fpn_dim, kernel=1) for c in fpn_inplanes[:-1])
        self.fpn_out = nn.ModuleList(nn.Sequential(_cbr(fpn_dim, fpn_dim)) for _ in fpn_inplanes[:-1])
        self.conv_last = nn.Sequential(_cbr(len(fpn_inplanes) * fpn_dim, fpn_dim), nn.Conv2d(fpn_dim, num_classes, 1))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        top = feats[-1]
        size = top.shape[-2:]
        pooled = [top] + [
            conv(F.interpolate(pool(top), size, mode="bilinear", align_corners=False))
            for pool, conv in zip(self.ppm_pooling, self.ppm_conv, strict=True)
        ]
        f = self.ppm_last_conv(torch.cat(pooled, 1))
        levels = [f]
        for i in reversed(range(len(feats) - 1)):
            lateral = self.fpn_in[i](feats[i])
            f = lateral + F.interpolate(f, lateral.shape[-2:], mode="bilinear", align_corners=False)
            levels.append(self.fpn_out[i](f))
        levels.reverse()
        out_size = levels[0].shape[-2:]
        fused = torch.cat([levels[0]] + [F.interpolate(x, out_size, mode="bilinear", align_corners=False)
                                         for x in levels[1:]], 1)
        return self.conv_last(fused)


class UPerNetSegmenter(nn.Module):
    """``encoder`` + ``decoder`` with CSAILVision's attribute names; logits at 1/4 of the input size."""

    def __init__(self, num_classes: int = 150) -> None:
        super().__init__()
        self.encoder = ResNetEncoder()
        self.decoder = UPerNetDecoder(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _weight_files(weights: str | None) -> tuple[Path, Path]:
    """(encoder, decoder) files: ``weights`` is their folder or 'ENCODER.pth,DECODER.pth'; default: hub cache."""
    if weights and "," in weights:
        enc, dec = (Path(p.strip()).expanduser() for p in weights.split(",", 1))
    else:
        folder = Path(weights).expanduser() if weights else default_weights_path(UPERNET_MODEL)
        enc, dec = folder / ENCODER_FILE, folder / DECODER_FILE
    for path in (enc, dec):
        if not path.is_file():
            raise WeightsMissingError(
                f"UPerNet-101 ADE20K weights {path.name} not found at {path}: download {ENCODER_FILE} and "
                f"{DECODER_FILE} from {UPERNET_SOURCE} into {path.parent}/ (or pass --seg_weights FOLDER)"
            )
    return enc, dec


@SEGMENTERS.register("upernet101")
def build_upernet101(weights: str | None, num_classes: int = 150) -> nn.Module:
    """UPerNet ResNet-101 ADE20K segmenter from CSAILVision's encoder/decoder files (``random`` for tests only)."""
    files = None if weights == "random" else _weight_files(weights)
    net = UPerNetSegmenter(num_classes)
    if files is not None:
        enc, dec = files
        load_exact(net.encoder, read_state_dict(enc, "UPerNet encoder"), enc, "ResNet-101 UPerNet encoder",
                   sync_bn_extras=True)
        load_exact(net.decoder, read_state_dict(dec, "UPerNet decoder"), dec, "UPerNet decoder", sync_bn_extras=True)
    return NormalizedSegmenter(net, IMAGENET_MEAN, IMAGENET_STD)
