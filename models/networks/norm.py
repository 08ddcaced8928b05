"""Normalisation layers picked by the --norm flag."""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn

from synth.core.errors import OptionError

NORM_NAMES = ("instance", "batch", "none")


def _identity(_channels: int) -> nn.Module:
    return nn.Identity()


def norm_layer(name: str) -> Callable[[int], nn.Module]:
    """A factory ``channels -> norm module``: instance (no affine, pix2pixHD default), batch (affine) or none."""
    if name == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False)
    if name == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True)
    if name == "none":
        return _identity
    raise OptionError(f"unknown norm '{name}'; choose one of: {', '.join(NORM_NAMES)}")
