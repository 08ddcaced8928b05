"""Import pix2pixHD checkpoints (``latest_net_G.pth`` / ``latest_net_D.pth``) into our networks.

pix2pixHD stores its layers in flat ``nn.Sequential`` containers (``model.{index}``); ours are named by role
(``stem``, ``down``, ``blocks``, ...). The mapping is positional: our layers, walked in registration order
with residual blocks as single units, line up one to one with pix2pixHD's indices.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from synth.core.errors import CheckpointError
from synth.models.networks.blocks import ResnetBlock
from synth.models.networks.discriminator import MultiscaleDiscriminator
from synth.models.networks.generator_global import GlobalGenerator
from synth.models.networks.generator_local import LocalEnhancer

_GENERATOR_KEY = re.compile(r"^(?P<group>model(?:\d+_[12])?)\.(?P<index>\d+)\.(?P<rest>.+)$")
_D_INTERM_KEY = re.compile(r"^scale(?P<scale>\d+)_layer(?P<stage>\d+)\.(?P<rest>.+)$")
_D_FLAT_KEY = re.compile(r"^layer(?P<scale>\d+)\.(?:model\.)?(?P<index>\d+)\.(?P<rest>.+)$")
_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")

StateDict = dict[str, torch.Tensor]


def load_pix2pixhd_file(path: str | Path) -> StateDict:
    """The state dict in a pix2pixHD ``.pth`` file, read with weights_only; CheckpointError if unreadable."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise CheckpointError(f"pix2pixHD checkpoint {path} not found") from error
    except Exception as error:  # any unreadable file is reported the same way
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"cannot read pix2pixHD checkpoint {path}: {first_line}") from error
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"pix2pixHD checkpoint {path} does not hold a state dict of tensors")
    return dict(state)


def convert_pix2pixhd_generator(state: Mapping[str, torch.Tensor], generator: nn.Module) -> StateDict:
    """A pix2pixHD global or local generator state dict renamed for ``generator`` (load it with strict=True)."""
    table = _generator_table(generator)
    converted: dict[str, tuple[str, torch.Tensor]] = {}
    for key, value in _strip_module(state).items():
        match = _GENERATOR_KEY.match(key)
        units = table.get(match["group"], []) if match else []
        if match is None or int(match["index"]) >= len(units):
            raise CheckpointError(f"unexpected pix2pixHD generator key '{key}' {_shape(value)}")
        unit = units[int(match["index"])]
        rest = match["rest"]
        if isinstance(generator.get_submodule(unit), ResnetBlock) and rest.startswith("conv_block."):
            rest = "body." + rest.removeprefix("conv_block.")
        converted[f"{unit}.{rest}"] = (key, value)
    return _finish(converted, generator, "generator")


def convert_pix2pixhd_discriminator(state: Mapping[str, torch.Tensor], discriminator: nn.Module) -> StateDict:
    """A pix2pixHD multi-scale D state dict renamed for ``discriminator``; pix2pixHD scale i is our num_D-1-i."""
    if not isinstance(discriminator, MultiscaleDiscriminator):
        raise CheckpointError(f"cannot import pix2pixHD weights into a {type(discriminator).__name__}")
    num_d = discriminator.num_D
    converted: dict[str, tuple[str, torch.Tensor]] = {}
    for key, value in _strip_module(state).items():
        converted[_discriminator_key(key, value, discriminator, num_d)] = (key, value)
    return _finish(converted, discriminator, "discriminator")


def _discriminator_key(key: str, value: torch.Tensor, discriminator: MultiscaleDiscriminator, num_d: int) -> str:
    """Our name for one pix2pixHD discriminator key, in either of its layouts (with/without interm feats)."""
    interm = _D_INTERM_KEY.match(key)
    flat = _D_FLAT_KEY.match(key)
    match = interm or flat
    if match is None or int(match["scale"]) >= num_d:
        raise CheckpointError(f"unexpected pix2pixHD discriminator key '{key}' {_shape(value)}")
    ours = num_d - 1 - int(match["scale"])
    if interm:
        return f"scales.{ours}.layers.{interm['stage']}.{interm['rest']}"
    units = _units(discriminator.scales[ours].layers, f"scales.{ours}.layers")
    if int(flat["index"]) >= len(units):
        raise CheckpointError(f"unexpected pix2pixHD discriminator key '{key}' {_shape(value)}")
    return f"{units[int(flat['index'])]}.{flat['rest']}"


def _generator_table(generator: nn.Module) -> dict[str, list[str]]:
    """pix2pixHD container name -> our layer prefixes, in pix2pixHD's index order."""
    if isinstance(generator, GlobalGenerator):
        return {"model": _units(generator, "")}
    if isinstance(generator, LocalEnhancer):
        table = {"model": _units(generator.global_net, "global_net")}
        for n, branch in enumerate(generator.enhancers, start=1):
            prefix = f"enhancers.{n - 1}"
            table[f"model{n}_1"] = _units(branch.stem, f"{prefix}.stem") + _units(branch.down, f"{prefix}.down")
            table[f"model{n}_2"] = (
                _units(branch.blocks, f"{prefix}.blocks")
                + _units(branch.up, f"{prefix}.up")
                + _units(branch.head, f"{prefix}.head")
            )
        return table
    raise CheckpointError(f"cannot import pix2pixHD weights into a {type(generator).__name__}")


def _units(module: nn.Module, prefix: str) -> list[str]:
    """Dotted names of the layers under ``module`` in order; a residual block counts as one layer."""
    children = list(module.named_children())
    if isinstance(module, ResnetBlock) or not children:
        return [prefix]
    names: list[str] = []
    for name, child in children:
        names += _units(child, f"{prefix}.{name}" if prefix else name)
    return names


def _finish(converted: dict[str, tuple[str, torch.Tensor]], net: nn.Module, what: str) -> StateDict:
    """Check the renamed tensors against ``net``'s own; CheckpointError naming the first mismatch."""
    expected = net.state_dict()
    result: StateDict = {}
    for ours, (theirs, value) in converted.items():
        if ours not in expected:
            if _is_stale_instance_norm_stat(net, ours):
                continue  # old PyTorch saved running stats for InstanceNorm; they are unused
            raise CheckpointError(
                f"pix2pixHD {what} key '{theirs}' {_shape(value)} has no counterpart '{ours}' in ours"
            )
        if value.shape != expected[ours].shape:
            raise CheckpointError(
                f"pix2pixHD {what} key '{theirs}' has shape {_shape(value)}, ours '{ours}' has {_shape(expected[ours])}"
            )
        result[ours] = value
    for ours, value in expected.items():
        if ours not in result:
            if ours.endswith(".num_batches_tracked"):
                result[ours] = value.clone()  # older checkpoints predate this counter
                continue
            raise CheckpointError(f"pix2pixHD {what} checkpoint lacks the weights for our '{ours}' {_shape(value)}")
    return result


def _is_stale_instance_norm_stat(net: nn.Module, key: str) -> bool:
    module_name, _, attribute = key.rpartition(".")
    if attribute not in _RUNNING_STATS:
        return False
    try:
        module = net.get_submodule(module_name)
    except AttributeError:
        return False
    return isinstance(module, nn.modules.instancenorm._InstanceNorm) and not module.track_running_stats


def _strip_module(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Drop the ``module.`` prefix that DataParallel adds."""
    return {key.removeprefix("module."): value for key, value in state.items()}


def _shape(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)

