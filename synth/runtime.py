"""Run-time choices shared by training, inference and export: precision, memory layout and compilation."""

from __future__ import annotations

import argparse
import contextlib

import torch

from synth.models.base_model import LayoutModel

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(opt: argparse.Namespace) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``--amp bf16|fp16`` on the run's device; a no-op for ``--amp none``."""
    if opt.amp not in AMP_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(opt.device).type, dtype=AMP_DTYPES[opt.amp])


def cast_for_inference(model: LayoutModel, opt: argparse.Namespace) -> None:
    """Under ``--amp bf16|fp16`` at inference, keep the networks' weights in that dtype: autocast's cast cache lasts
    one autocast region, so otherwise every call would cast all of G's weights (182 M for pix2pixHD's global G) again.
    Only for code that runs the model under ``autocast`` (which casts fp32 inputs at each convolution)."""
    if opt.amp in AMP_DTYPES:
        model.to(AMP_DTYPES[opt.amp])


def prepare_networks(model: LayoutModel, opt: argparse.Namespace) -> None:
    """Apply --channels_last and --compile in place (state-dict keys stay the same, so checkpoints are portable)."""
    if opt.channels_last:
        model.to(memory_format=torch.channels_last)
    if opt.compile:
        for net in model.networks().values():
            net.compile()
    if opt.verbose:
        for name, net in model.networks().items():
            print(f"net{name}: {sum(p.numel() for p in net.parameters()):,} parameters\n{net}")
