"""Run-time choices shared by training, inference and export: precision, memory layout and compilation."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

import torch
from torch import nn

from synth.models.base_model import LayoutModel
from synth.models.networks.vgg import VGG19Features
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
    pix2pixHD's global G) again. Then switch the wide res-block convolutions to Winograd where ``conv_algorithm``
    says so: kernels transformed once, or under auto in fp32 at each call on large maps, where kept fp32 kernels
    would cost 1.2 GB (on an AVX2 EPYC 1.02-1.14x at 512x256, 1.38-1.45x at 1024x512 for no measurable memory;
    docs/benchmarks.md). Only for code that runs the model under ``autocast`` (which casts fp32 inputs at each
    convolution)."""
    if opt.amp in AMP_DTYPES:
        model.to(AMP_DTYPES[opt.amp])
    if channels_last_upsampling_pays(opt):
        upsampling = use_channels_last_upsampling(model)
        if opt.verbose:
            print(f"--conv_algorithm auto: {upsampling} transposed convolutions channels-last (fp32 CPU inference)")
    if conv_algorithm(opt) != "winograd":
        return
    layers = [layer for layer in model.modules() if isinstance(layer, Conv3x3)]
    if opt.conv_algorithm == "auto" and opt.amp not in AMP_DTYPES:
        switched = sum(layer.use_winograd(per_call=True, min_pixels=AUTO_MIN_PIXELS) for layer in layers)
        how = f"kernels transformed at each call, on maps of {AUTO_MIN_PIXELS} pixels or more"
    else:
        switched, how = sum(layer.use_winograd() for layer in layers), "kernels transformed once"
    if opt.verbose:
        print(f"--conv_algorithm {opt.conv_algorithm}: winograd in {switched} res-block convolutions ({how})")


def conv_algorithm(opt: argparse.Namespace) -> str:
    """``--conv_algorithm`` resolved: auto is winograd on the CPU unless --compile, on the res blocks' large maps
    (``AUTO_MIN_PIXELS``: pix2pixHD at 512x256 and up) where a direct convolution is bound by the CPU's
    arithmetic, and for bf16 inference on all (docs/benchmarks.md: bf16 inference 1.3-1.5x with native bf16; a
    training step at 512x256 1.17x in bf16 on Zen 4, 1.14-1.20x in fp32 on Zen 3; fp32 inference
    ``cast_for_inference``). Training runs directly on a CPU with AMX: ``use_training_algorithm``."""
    if opt.conv_algorithm != "auto":
        return opt.conv_algorithm
    cpu = torch.device(opt.device).type == "cpu"
    return "winograd" if cpu and not opt.compile else "direct"  # (fp16 is refused on the CPU)


def channels_last_upsampling_pays(opt: argparse.Namespace) -> bool:
    """Whether fp32 inference runs the transposed convolutions channels-last: under ``--conv_algorithm auto`` on the
    CPU, in fp32, unless the whole networks already are (``--channels_last``) or compiled. Measured for fp32 only
    (docs/benchmarks.md); bf16 keeps its layout."""
    return (opt.conv_algorithm == "auto" and torch.device(opt.device).type == "cpu" and opt.amp not in AMP_DTYPES
            and not opt.channels_last and not opt.compile)


def use_channels_last_upsampling(model: LayoutModel) -> int:
    """Run every transposed convolution channels-last (weight converted; input converted on entry) and make each
    network's outputs contiguous again. In pix2pixHD's decoder the layout then carries on through norm, ReLU, pad
    and the 7x7 output convolution, where oneDNN's channels-last kernels are up to 2x faster on the CPU (3 output
    channels; docs/benchmarks.md). For inference: these layers' backward is slower channels-last. Returns how many
    layers were switched."""
    switched = 0
    for net in model.networks().values():
        layers = [layer for layer in net.modules() if isinstance(layer, nn.ConvTranspose2d)]
        for layer in layers:
            layer.to(memory_format=torch.channels_last)
            layer.register_forward_pre_hook(_channels_last_input)
        if layers:
            net.register_forward_hook(_contiguous_output)
        switched += len(layers)
    return switched


def _channels_last_input(_layer: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])


def _contiguous_output(_net: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.contiguous()
    if type(output) in (tuple, list):
        return type(output)(_contiguous_output(_net, _args, item) for item in output)
    if isinstance(output, dict):
        return {key: _contiguous_output(_net, _args, item) for key, item in output.items()}
    return output


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Sapphire Rapids and later), where oneDNN's direct bf16 convolutions
    train faster than the differentiable Winograd (docs/benchmarks.md)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe()) if probe is not None else False


def _frozen_vggs(model: LayoutModel) -> list[VGG19Features]:
    """The frozen VGG19 networks of a model's perceptual losses."""
    return [net for net in model.modules() if isinstance(net, VGG19Features)]


def _trained_conv3x3s(model: LayoutModel) -> list[Conv3x3]:
    """The model's ``Conv3x3`` layers outside its frozen VGG19s: the res blocks'."""
    in_vgg = {id(layer) for net in _frozen_vggs(model) for layer in net.modules()}
    return [layer for layer in model.modules() if isinstance(layer, Conv3x3) and id(layer) not in in_vgg]


def use_training_algorithm(model: LayoutModel, opt: argparse.Namespace) -> None:
    """Under ``--conv_algorithm winograd``, train the wide res-block convolutions by differentiable Winograd; under
    auto (on the CPU) only on maps of ``AUTO_MIN_PIXELS`` or more, where it pays, and not on a CPU with AMX, where
    the direct bf16 convolutions are faster and their weight gradients are taken as one matrix product
    (``Conv3x3.use_split_backward``: bf16 steps 1.09-1.10x, fp32 1.00-1.08x; fp32 by Winograd there was 1.04-1.05x
    faster at 512x256 but held ~165 MB more at the step's peak, the reference's level); under auto their bf16 calls on
    smaller maps run as one matrix product (``matmul_conv3x3``: no weight reorders). The frozen VGG19 of the
    perceptual loss runs its wide convolutions by Winograd too, kernels transformed once, in fp32 and bf16 (its loss
    and input gradient 1.15-1.17x faster at 512x256 on Zen 4 with native bf16; fp16 is CUDA-only: direct)."""
    if conv_algorithm(opt) != "winograd":
        return
    if opt.conv_algorithm == "auto" and cpu_has_amx():
        split = sum(layer.use_split_backward() for layer in _trained_conv3x3s(model))
        if opt.verbose:
            print(f"--conv_algorithm auto: AMX present, training the {split} res-block convolutions directly "
                  "(weight gradients as one matrix product)")
        return
    min_pixels = AUTO_MIN_PIXELS if opt.conv_algorithm == "auto" else 0
    switched = sum(layer.use_winograd(per_call=True, min_pixels=min_pixels, small_maps_by_matmul=bool(min_pixels))
                   for layer in _trained_conv3x3s(model))
    frozen = sum(net.use_winograd(min_pixels) for net in _frozen_vggs(model)) if opt.amp != "fp16" else 0
    if opt.verbose:
        print(f"--conv_algorithm winograd: training {switched} res-block convolutions by Winograd"
              + (f", and {frozen} of VGG19's (kernels transformed once)" if frozen else ""))


def cast_frozen_networks(model: LayoutModel, opt: argparse.Namespace) -> int:
    """Under ``--amp bf16|fp16`` keep the frozen VGG19 of the perceptual loss, and its kept Winograd kernels, in that
    dtype: autocast casts the weights of a convolution at every call unless they are leaves that need gradients,
    so it would cast VGG19's 20 M weights (and 22 M kernel values) three times a step. The values are the same:
    autocast runs those convolutions in that dtype anyway. Returns how many networks were cast."""
    if opt.amp not in AMP_DTYPES:
        return 0
    vggs = _frozen_vggs(model)
    for net in vggs:
        net.to(AMP_DTYPES[opt.amp])
    return len(vggs)


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
