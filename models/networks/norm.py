"""Normalisation layers picked by the --norm flag."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from synth.core.errors import OptionError

NORM_NAMES = ("instance", "batch", "none")

#: Channels-last maps with fewer pixels than this are made contiguous before the group norm of an inference call:
#: torch's channels-last group norm is slower there (1024 x 16 x 32: 5.2 ms against 1.0; 512 x 16 x 32: 1.3 / 0.3)
#: and faster from 1024 pixels up (1024 x 32 x 32: 0.3 against 2.7; 64 x 256 x 512: 4.4 against 31 ms).
CHANNELS_LAST_MIN_PIXELS = 1024


class InstanceNorm2d(nn.InstanceNorm2d):
    """pix2pixHD's instance norm (``nn.InstanceNorm2d``'s keys), on the CPU as a group norm of one channel per group:
    the same statistics, faster, and right where torch's ``instance_norm`` backward is wrong (channels-last grads)."""

    # torch 2.14's CPU instance_norm gives wrong input gradients when the incoming gradient is channels-last
    # (--channels_last training, below Winograd convolutions; tests/test_norm.py); group_norm does not, and is 2-7x
    # faster forward and 1.5-2.5x forward + backward on contiguous maps (docs/benchmarks.md). A channels-last input
    # that needs a gradient is made contiguous first (channels-last group norm backward is the slower one).
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type != "cpu" or x.dim() != 4 or self.affine or self.track_running_stats
                or torch.onnx.is_in_onnx_export()):
            return super().forward(x)
        if not x.is_contiguous() and (
                (torch.is_grad_enabled() and x.requires_grad) or x.shape[2] * x.shape[3] < CHANNELS_LAST_MIN_PIXELS):
            x = x.contiguous()
        return F.group_norm(x, x.shape[1], eps=self.eps)


def _identity(_channels: int) -> nn.Module:
    return nn.Identity()


def norm_layer(name: str) -> Callable[[int], nn.Module]:
    """A factory ``channels -> norm module``: instance (no affine, pix2pixHD default), batch (affine) or none."""
    if name == "instance":
        return functools.partial(InstanceNorm2d, affine=False)
    if name == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True)
    if name == "none":
        return _identity
    raise OptionError(f"unknown norm '{name}'; choose one of: {', '.join(NORM_NAMES)}")
