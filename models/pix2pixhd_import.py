"""Import pix2pixHD checkpoints (``latest_net_G.pth`` / ``_net_D.pth`` / ``_net_E.pth``) into our networks, and read
its feature clusters (``features_clustered_NNN.npy``) without running any code they might carry.

pix2pixHD stores its layers in flat ``nn.Sequential`` containers (``model.{index}``); ours are named by role
(``stem``, ``down``, ``blocks``, ...). The mapping is positional: our layers, walked in registration order
with residual blocks as single units, line up one to one with pix2pixHD's indices.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from synth.core.errors import CheckpointError
from synth.models.networks.blocks import ResnetBlock
from synth.models.networks.discriminator import MultiscaleDiscriminator
from synth.models.networks.encoder import InstanceEncoder
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
    return _convert_sequential(state, generator, _generator_table(generator), "generator")


def convert_pix2pixhd_encoder(state: Mapping[str, torch.Tensor], encoder: nn.Module) -> StateDict:
    """pix2pixHD's feature ``Encoder`` (one ``model`` Sequential: a global generator's layers without residual
    blocks) renamed for our ``InstanceEncoder``, whose trunk ``net`` has those layers."""
    if not isinstance(encoder, InstanceEncoder):
        raise CheckpointError(f"cannot import pix2pixHD encoder weights into a {type(encoder).__name__}")
    converted = _convert_sequential(state, encoder.net, {"model": _units(encoder.net, "")}, "encoder")
    return {f"net.{key}": value for key, value in converted.items()}


def _convert_sequential(
    state: Mapping[str, torch.Tensor], net: nn.Module, table: dict[str, list[str]], what: str
) -> StateDict:
    """Rename ``{container}.{index}.rest`` keys positionally through ``table`` (container -> our layer names)."""
    converted: dict[str, tuple[str, torch.Tensor]] = {}
    for key, value in _strip_module(state).items():
        match = _GENERATOR_KEY.match(key)
        units = table.get(match["group"], []) if match else []
        if match is None or int(match["index"]) >= len(units):
            raise CheckpointError(f"unexpected pix2pixHD {what} key '{key}' {_shape(value)}")
        unit = units[int(match["index"])]
        rest = match["rest"]
        if isinstance(net.get_submodule(unit), ResnetBlock) and rest.startswith("conv_block."):
            rest = "body." + rest.removeprefix("conv_block.")
        converted[f"{unit}.{rest}"] = (key, value)
    return _finish(converted, net, what)


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
    if isinstance(module, (nn.Sequential, nn.ModuleList)) and not children:
        return []  # an empty container (no residual blocks) holds no layer
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



# ----- features_clustered_NNN.npy: np.save of a dict {label: centres}, i.e. a pickle inside a .npy -------------

def _numpy_array_globals() -> dict[tuple[str, str], object]:
    """The only names a pickle of plain numpy arrays (and a dict of them) refers to, under numpy 1 and 2."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    names: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                            ("builtins", "dict"): dict, ("builtins", "int"): int}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        names[(module, "_reconstruct")] = _reconstruct
        names[(module, "scalar")] = scalar
    return names


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dicts and ints only: any other global (os.system, builtins.eval...) is refused
    before it is looked up, so nothing in the file runs."""

    allowed = _numpy_array_globals()

    def find_class(self, module: str, name: str) -> object:
        found = self.allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"{module}.{name}")
        return found


def read_pix2pixhd_clusters(path: str | Path, feat_num: int) -> dict[int, np.ndarray]:
    """pix2pixHD's ``features_clustered_NNN.npy`` ({label: [k, feat_num] K-means centres}) read with a restricted
    unpickler; CheckpointError (one line) if it is something else or its pickle asks for anything but arrays."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f"npy format version {version}")
            _, _, dtype = read_header[version](f)
            if dtype != np.dtype(object):
                raise ValueError(f"it holds a {dtype} array, not the dict np.save writes for the clusters")
            loaded = _ArrayUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: pix2pixHD cluster file not found") from None
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused, its pickle asks for {exc}, not numpy array data; nothing of it was run"
        ) from None
    except Exception as exc:  # any malformed file is reported the same way
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a pix2pixHD cluster file ({reason})") from None
    return _cluster_table(path, loaded, feat_num)


def _cluster_table(path: Path, loaded: object, feat_num: int) -> dict[int, np.ndarray]:
    """Check the unpickled object is {label: 2-D float array of feat_num columns}; float32 copies."""
    table = loaded.item() if isinstance(loaded, np.ndarray) and loaded.shape == () else loaded
    if not isinstance(table, dict):
        raise CheckpointError(f"{path}: not a pix2pixHD cluster file (holds a {type(table).__name__}, not a dict)")
    centers = {}
    for label, value in table.items():
        if not isinstance(label, (int, np.integer)) or not isinstance(value, np.ndarray) or value.ndim != 2:
            raise CheckpointError(f"{path}: not a pix2pixHD cluster file (entry {label!r} is not label: centres)")
        if value.shape[1] != feat_num or not np.issubdtype(value.dtype, np.floating):
            hint = " (features.npy keeps an area column: import features_clustered_NNN.npy)" \
                if value.shape[1] == feat_num + 1 else ""
            raise CheckpointError(
                f"{path}: class {label} has centres of shape {value.shape}, expected [k, {feat_num}] "
                f"(--feat_num){hint}"
            )
        centers[int(label)] = value.astype(np.float32)
    return centers
