"""Run-time choices shared by training, inference and export: precision, memory layout and compilation."""

from __future__ import annotations

import argparse
import contextlib

import torch

from synth.models.base_model import LayoutModel
from synth.models.networks.winograd import AUTO_MIN_PIXELS, Conv3x3

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(opt: argparse.Namespace) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``--amp bf16|fp16`` on the run's device; a no-op for ``--amp none``."""
    if opt.amp not in AMP_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(opt.device).type, dtype=AMP_DTYPES[opt.amp])


def cast_for_inference(model: LayoutModel, opt: argparse.Namespace) -> None:
    """Prepare loaded networks for inference. Under ``--amp bf16|fp16``, keep their weights in that dtype: autocast's
    cast cache lasts one autocast region, so otherwise every call would cast all of G's weights (182 M for
    pix2pixHD's global G) again. Then switch the wide res-block convolutions to Winograd as ``--conv_algorithm``
    asks: kernels transformed once (``conv_algorithm`` winograd) or at each call on large maps
    (``per_call_inference``). Only for code that runs the model under ``autocast`` (which casts fp32 inputs at
    each convolution)."""
    if opt.amp in AMP_DTYPES:
        model.to(AMP_DTYPES[opt.amp])
    layers = [layer for layer in model.modules() if isinstance(layer, Conv3x3)]
    if conv_algorithm(opt) == "winograd":
        switched, how = sum(layer.use_winograd() for layer in layers), "kernels transformed once"
    elif per_call_inference(opt):
        switched = sum(layer.use_winograd(per_call=True, min_pixels=AUTO_MIN_PIXELS) for layer in layers)
        how = f"kernels transformed at each call, on maps of {AUTO_MIN_PIXELS} pixels or more"
    else:
        return
    if opt.verbose:
        print(f"--conv_algorithm {opt.conv_algorithm}: winograd in {switched} res-block convolutions ({how})")


def conv_algorithm(opt: argparse.Namespace) -> str:
    """``--conv_algorithm`` resolved: auto is winograd under bf16 on the CPU unless --compile (with native bf16,
    inference 1.3-1.5x faster; a pix2pixHD training step 1.17x at 512x256, where the res blocks' maps are large
    enough, and training takes it only on such maps and without AMX: ``use_training_algorithm``;
    docs/benchmarks.md); direct in fp32, where inference's kept Winograd kernels would cost 1.2 GB (fp32 inference
    takes Winograd per call instead: ``per_call_inference``) and training pays only at 512x256 and above on some
    CPUs, so it is asked for."""
    if opt.conv_algorithm != "auto":
        return opt.conv_algorithm
    cpu = torch.device(opt.device).type == "cpu"
    return "winograd" if cpu and opt.amp == "bf16" and not opt.compile else "direct"


def per_call_inference(opt: argparse.Namespace) -> bool:
    """Whether auto runs fp32 inference on the CPU (no --compile) by Winograd with the kernels transformed at each
    call, on res-block maps of ``AUTO_MIN_PIXELS`` or more: on an AVX2 EPYC 1.07-1.14x at 512x256 and 1.36x at
    1024x512 for 70-100 MB of peak memory, where kept kernels would add 1.2 GB (docs/benchmarks.md)."""
    on_cpu = torch.device(opt.device).type == "cpu"
    return opt.conv_algorithm == "auto" and on_cpu and opt.amp not in AMP_DTYPES and not opt.compile


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Sapphire Rapids and later), where oneDNN's direct bf16 convolutions
    train faster than the differentiable Winograd (docs/benchmarks.md)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe()) if probe is not None else False


def use_training_algorithm(model: LayoutModel, opt: argparse.Namespace) -> None:
    """Under ``--conv_algorithm winograd``, train the wide res-block convolutions by differentiable Winograd; under
    auto (bf16 on the CPU) only on maps of ``AUTO_MIN_PIXELS`` or more, where it pays, and not on a CPU
    with AMX, where the direct convolutions are faster."""
    if conv_algorithm(opt) != "winograd":
        return
    if opt.conv_algorithm == "auto" and cpu_has_amx():
        if opt.verbose:
            print("--conv_algorithm auto: AMX present, training the res-block convolutions directly")
        return
    min_pixels = AUTO_MIN_PIXELS if opt.conv_algorithm == "auto" else 0
    switched = sum(layer.use_winograd(per_call=True, min_pixels=min_pixels)
                   for layer in model.modules() if isinstance(layer, Conv3x3))
    if opt.verbose:
        print(f"--conv_algorithm winograd: training {switched} res-block convolutions by Winograd")


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
