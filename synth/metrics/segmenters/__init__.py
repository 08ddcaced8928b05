"""Segmentation networks run on synthesized images (``--seg_model``), chosen by name from ``SEGMENTERS``.

Every entry is ``build(weights: str | None, num_classes: int) -> nn.Module``; the module takes RGB images in [0, 1]
``[B, 3, H, W]`` and returns logits ``[B, C, H, W]`` at the input size (each wrapper applies its network's own input
normalisation). Published checkpoints are read from a local path (``--seg_weights``) or the torch hub checkpoints
folder; nothing is downloaded, and a missing file is a one-line WeightsMissingError saying what to put where.

| name | network | weights |
|---|---|---|
| ``drn_d_105`` | DRN-D-105 + DRNSeg head (fyu/drn), Cityscapes 19 classes | ``drn-d-105_ms_cityscapes.pth`` |
| ``upernet101`` | ResNet-101 + UPerNet (CSAILVision), ADE20K 150 classes | ``encoder_epoch_50.pth``,
``decoder_epoch_50.pth`` |
| ``deeplabv3_resnet50`` / ``deeplabv3_resnet101`` | torchvision DeepLabV3 | a state dict you trained |
| ``torchscript`` | any ``torch.jit`` segmenter | the ``.pt`` file |
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from synth.core.errors import CheckpointError, WeightsMissingError
from synth.core.registry import Registry

SEGMENTERS = Registry("segmenter (--seg_model)")


class NormalizedSegmenter(nn.Module):
    """Normalises [0, 1] RGB input with ``mean``/``std``, runs ``net`` and resizes its logits to the input size."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.net((images - self.mean) / self.std)
        return fit_logits(logits, images.shape[-2:])


def fit_logits(logits: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Crop (when at most 8 pixels larger, from a stride-8 upsampler) or bilinearly resize logits to ``size``."""
    h, w = int(size[0]), int(size[1])
    lh, lw = logits.shape[-2:]
    if (lh, lw) == (h, w):
        return logits
    if h <= lh < h + 8 and w <= lw < w + 8:
        return logits[..., :h, :w]
    return nn.functional.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)


def default_weights_path(filename: str) -> Path:
    """Where a weights file is looked for when no path is given: the torch hub checkpoints folder."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def require_file(path: str | Path | None, default_name: str, what: str, source: str) -> Path:
    """``path`` (or the hub-cache default) if it is a file; otherwise a one-line WeightsMissingError."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsMissingError(f"{what} weights not found at {p}: get {default_name} from {source} "
                                      f"and pass its path with --seg_weights")
        return p
    p = default_weights_path(default_name)
    if not p.is_file():
        raise WeightsMissingError(f"{what} weights {default_name} not found: put it in {p.parent}/ "
                                  f"(from {source}) or pass --seg_weights PATH")
    return p


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """A state dict from a ``torch.save`` file: a plain dict, or one under 'state_dict' / 'model'; ``module.``
    prefixes (DataParallel) are removed."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read {what} weights ({type(exc).__name__})") from None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state dict of {what} weights")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


#: Buffers CSAIL's SynchronizedBatchNorm keeps per BatchNorm layer besides PyTorch's (its published files carry
#: them); they hold no statistics the forward pass uses.
SYNC_BN_EXTRAS = ("_tmp_running_mean", "_tmp_running_var", "_running_iter")


def load_exact(module: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, what: str,
               sync_bn_extras: bool = False) -> None:
    """Load ``state`` with strict names and shapes; BatchNorm ``num_batches_tracked`` counters, which checkpoints
    saved by PyTorch before 0.4.1 lack, are kept from the module, and with ``sync_bn_extras`` the
    SynchronizedBatchNorm buffers of one of our BatchNorm layers are dropped. Any other mismatch is one
    CheckpointError line naming the file and the first keys."""
    own = module.state_dict()
    state = dict(state)
    if sync_bn_extras:
        state = {k: v for k, v in state.items() if not _is_sync_bn_extra(k, own)}
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of other shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise CheckpointError(f"{path}: not {what} weights: " + ", ".join(parts))
    module.load_state_dict(state, strict=True)


def _is_sync_bn_extra(key: str, own: Mapping[str, torch.Tensor]) -> bool:
    """``layer._tmp_running_mean`` etc. where ``layer`` is a BatchNorm layer of ours (it has running_mean)."""
    prefix, _, name = key.rpartition(".")
    return name in SYNC_BN_EXTRAS and f"{prefix}.running_mean" in own


def load_segmenter(name: str, weights: str | None, num_classes: int, device: str | torch.device = "cpu") -> nn.Module:
    """The segmenter ``name`` with its weights, in eval mode on ``device``."""
    net = SEGMENTERS.get(name)(weights, num_classes)
    return net.eval().to(device)


# register the built-in segmenters
from synth.metrics.segmenters import drn, torchscript, torchvision_deeplab, upernet  # noqa: E402, F401
