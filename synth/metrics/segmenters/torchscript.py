"""Any TorchScript segmenter (``--seg_model torchscript --seg_weights model.pt``).

Contract: the scripted module takes RGB images in [0, 1] as float ``[B, 3, H, W]`` (it does its own normalisation)
and returns logits ``[B, C, h, w]`` — a tensor, a dict with an ``'out'`` entry, or a tuple/list whose first item is
the logits; they are resized bilinearly to ``H x W`` when ``h x w`` differs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from synth.core.errors import CheckpointError, WeightsMissingError
from synth.metrics.segmenters import SEGMENTERS, fit_logits


class TorchScriptSegmenter(nn.Module):
    """Wraps a scripted segmenter and checks its number of classes on the first batch."""

    def __init__(self, module: torch.jit.ScriptModule, num_classes: int, path: str) -> None:
        super().__init__()
        self.module = module
        self.num_classes = num_classes
        self.path = path

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.module(images)
        if isinstance(out, dict):
            out = out["out"]
        elif isinstance(out, (tuple, list)):
            out = out[0]
        if out.dim() != 4 or out.shape[1] != self.num_classes:
            raise CheckpointError(f"{self.path}: TorchScript segmenter returned shape {tuple(out.shape)}, expected "
                                  f"[B, {self.num_classes}, H, W] logits")
        return fit_logits(out, images.shape[-2:])


@SEGMENTERS.register("torchscript")
def build_torchscript(weights: str | None, num_classes: int) -> nn.Module:
    """Load ``weights`` with ``torch.jit.load``."""
    if not weights or weights == "random":
        raise WeightsMissingError("--seg_model torchscript needs --seg_weights PATH to a torch.jit-saved segmenter")
    if not Path(weights).expanduser().is_file():
        raise WeightsMissingError(f"TorchScript segmenter not found at {weights}: pass an existing file with "
                                  f"--seg_weights")
    try:
        module = torch.jit.load(str(Path(weights).expanduser()), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{weights}: not a TorchScript module ({first})") from None
    return TorchScriptSegmenter(module, num_classes, weights)
