"""torchvision's DeepLabV3 (ResNet-50 / ResNet-101) as an alternative segmenter, from a state dict you trained or
fine-tuned on the evaluation classes (torchvision's own weights are for COCO/VOC's 21 classes, not Cityscapes or
ADE20K). The auxiliary head is built when the state dict has one. Input: ImageNet mean/std."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from synth.core.errors import WeightsMissingError
from synth.metrics.segmenters import SEGMENTERS, NormalizedSegmenter, load_exact, read_state_dict, require_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _OutOnly(nn.Module):
    """torchvision segmentation models return a dict; keep its 'out' logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]


def _build(factory: Callable[..., nn.Module], name: str, weights: str | None, num_classes: int) -> nn.Module:
    if weights == "random":
        net = factory(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
    else:
        if not weights:
            raise WeightsMissingError(f"--seg_model {name} needs --seg_weights PATH: a state dict of torchvision's "
                                      f"{name} trained on the evaluation classes")
        path = require_file(weights, f"{name}.pth", name, "your own training run")
        state = read_state_dict(path, name)
        aux = any(k.startswith("aux_classifier.") for k in state)
        net = factory(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux)
        load_exact(net, state, path, f"torchvision {name} ({num_classes} classes)")
    return NormalizedSegmenter(_OutOnly(net), IMAGENET_MEAN, IMAGENET_STD)


@SEGMENTERS.register("deeplabv3_resnet50")
def build_deeplabv3_resnet50(weights: str | None, num_classes: int) -> nn.Module:
    """torchvision DeepLabV3-ResNet-50 with ``num_classes`` outputs."""
    from torchvision.models.segmentation import deeplabv3_resnet50

    return _build(deeplabv3_resnet50, "deeplabv3_resnet50", weights, num_classes)


@SEGMENTERS.register("deeplabv3_resnet101")
def build_deeplabv3_resnet101(weights: str | None, num_classes: int) -> nn.Module:
    """torchvision DeepLabV3-ResNet-101 with ``num_classes`` outputs."""
    from torchvision.models.segmentation import deeplabv3_resnet101

    return _build(deeplabv3_resnet101, "deeplabv3_resnet101", weights, num_classes)
