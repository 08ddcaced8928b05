"""Frozen VGG19 feature extractor for the perceptual loss, loaded from torchvision's weight file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from synth.core.errors import CheckpointError, WeightsMissingError
from synth.models.networks.winograd import Conv3x3

VGG19_FILE = "vgg19-dcbb9e9d.pth"
# torchvision's vgg19 ``features`` up to relu5_1: channel widths, "M" for max pooling.
_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
# Slice boundaries in torchvision's indices: outputs are relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
SLICE_BOUNDS = (0, 2, 7, 12, 21, 30)
#: VGG19's convolutions run by Winograd (``use_winograd``) from this width on: fp32 on an AVX2 EPYC, kernels kept
#: (docs/benchmarks.md).
WINOGRAD_MIN_CHANNELS = 256


def _vgg19_layers() -> list[nn.Module]:
    """torchvision's vgg19 ``features[0:30]``, same indices (its 3x3 convolutions as ``Conv3x3``: same keys)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [Conv3x3(channels, int(item), padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    return layers


class VGG19Features(nn.Module):
    """``slice1..slice5`` hold torchvision's layers under their original indices; always frozen and in eval."""

    def __init__(self) -> None:
        super().__init__()
        layers = _vgg19_layers()
        for number, (start, stop) in enumerate(zip(SLICE_BOUNDS[:-1], SLICE_BOUNDS[1:], strict=True), start=1):
            stage = nn.Sequential()
            for index in range(start, stop):
                stage.add_module(str(index), layers[index])
            self.add_module(f"slice{number}", stage)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_weights(cls, path: str | None = None) -> VGG19Features:
        """Built and loaded from ``path`` or torchvision's cache file (see load_vgg19_weights)."""
        net = cls()
        net.load_state_dict(load_vgg19_weights(path), strict=True)
        return net

    def use_winograd(self, min_pixels: int) -> int:
        """Run the convolutions at least ``WINOGRAD_MIN_CHANNELS`` wide by Winograd on the CPU, kernels transformed
        once (the weights are frozen), on calls with ``min_pixels`` output pixels or more. Returns how many."""
        return sum(conv.use_winograd(min_pixels=min_pixels, min_channels=WINOGRAD_MIN_CHANNELS)
                   for conv in self.modules() if isinstance(conv, Conv3x3))

    def train(self, mode: bool = True) -> VGG19Features:
        """Stays in eval mode whatever the parent model does."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for number in range(1, len(SLICE_BOUNDS)):
            x = getattr(self, f"slice{number}")(x)
            outputs.append(x)
        return outputs


def default_vgg19_path() -> Path:
    """Where torchvision caches vgg19's weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def load_vgg19_weights(path: str | None = None) -> dict[str, torch.Tensor]:
    """VGG19Features' state dict from a torchvision vgg19 file (full model, or ``features`` only)."""
    file = Path(path) if path else default_vgg19_path()
    if not file.is_file():
        hub_checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
        raise WeightsMissingError(
            f"VGG19 weights not found at {file}: put {VGG19_FILE} in {hub_checkpoints}/ "
            f"or pass --vgg_weights PATH, or train with --no_vgg_loss"
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file is reported the same way
        raise CheckpointError(f"cannot read VGG19 weights {file}: {error}") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"VGG19 weights {file} hold a {type(state).__name__}, not a state dict")
    return _select_slices(state, file)


def _select_slices(state: dict, file: Path) -> dict[str, torch.Tensor]:
    """Keep the tensors the slices use, renamed ``features.N.x`` -> ``sliceK.N.x``; CheckpointError if lacking."""
    with torch.device("meta"):
        expected = VGG19Features().state_dict()
    selected = {}
    for key, reference in expected.items():
        _slice, rest = key.split(".", 1)
        value = state.get(f"features.{rest}", state.get(rest))
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"VGG19 weights {file} lack 'features.{rest}'; not a torchvision vgg19 file?")
        if value.shape != reference.shape:
            raise CheckpointError(
                f"VGG19 weights {file}: 'features.{rest}' has shape {tuple(value.shape)}, "
                f"expected {tuple(reference.shape)}; not a vgg19 file?"
            )
        selected[key] = value
    return selected
