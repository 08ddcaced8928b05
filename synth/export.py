"""ONNX export of a trained generator: ``export_generator_onnx`` and the ``synth-export-onnx`` command.

The ONNX graph maps ``semantics`` [N, C, H, W] float32 (the tensor ``model.encode_input`` builds: one-hot labels,
then the instance boundary channel, then any feature channels) to ``image`` [N, output_nc, H, W] in [-1, 1].
H and W must be multiples of the generator's ``size_multiple``. See docs/export.md.

Exporter: torch's TorchScript-based exporter (``dynamo=False``) by default. For these ResNet generators it is
~10x faster than the torch.export-based one, writes exactly the opset asked for (the dynamo exporter builds opset
18 and cannot convert its Pad nodes down to 17) and names the dynamic axes batch/height/width. ``dynamo=True``
(``--dynamo``, opset >= 18) selects torch.export, for when the TorchScript exporter is gone.
"""

from __future__ import annotations

import argparse
import io
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from synth.core.atomic import atomic_write_bytes
from synth.core.errors import OptionError, SynthError

INPUT_NAME = "semantics"
OUTPUT_NAME = "image"
AXES = {0: "batch", 2: "height", 3: "width"}
DYNAMO_MIN_OPSET = 18
#: Options the command records in the file's metadata (with ``size_multiple`` and ``input_layout``).
METADATA_KEYS = (
    "name",
    "which_epoch",
    "netG",
    "label_nc",
    "contain_dontcare_label",
    "no_instance",
    "input_nc",
    "output_nc",
)

# Known, harmless warnings of the TorchScript exporter on these networks (InstanceNorm2d without running stats
# always normalises with the input's statistics, which is what "train=True" means there).
_QUIET = (
    (DeprecationWarning, r"You are using the legacy TorchScript-based ONNX export"),
    (DeprecationWarning, r"The feature will be removed"),
    (UserWarning, r"ONNX export mode is set to TrainingMode.EVAL, but operator 'instance_norm'"),
    (UserWarning, r"Constant folding - Only steps=1 can be constant folded"),
)
# Shape checks inside torch's InstanceNorm2d and instance_norm that the tracer sees; they do not depend on the data.
_QUIET_TRACER_MODULES = (r"torch\.nn\.modules\.instancenorm", r"torch\.nn\.functional")


def input_channels(model: nn.Module) -> int:
    """Channels of the generator input: ``in_channels`` of the first Conv2d (whatever the channels mean)."""
    net = getattr(model, "netG", model)
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    raise SynthError(f"{type(net).__name__} has no Conv2d layer; cannot tell its number of input channels")


def size_multiple(model: nn.Module) -> int:
    """The generator's total stride: input height and width must be multiples of it."""
    return int(getattr(getattr(model, "netG", model), "size_multiple", 1))


def export_generator_onnx(
    model: nn.Module,
    path: str | Path,
    example_height: int,
    example_width: int,
    opset: int = 17,
    dynamic: bool = True,
    *,
    batch_size: int = 1,
    dynamo: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write the generator (``model(semantics) -> image``) to ``path`` atomically after ``onnx.checker`` passes.

    ``dynamic``: batch, height and width are free (height and width multiples of ``size_multiple``); otherwise the
    graph is fixed to ``[batch_size, C, example_height, example_width]``.
    """
    onnx = _import_onnx()
    multiple = size_multiple(model)
    for what, value in (("height", example_height), ("width", example_width)):
        if value < 1 or value % multiple:
            raise OptionError(
                f"--{what} must be a positive multiple of {multiple} (the generator's stride), not {value}"
            )
    if batch_size < 1:
        raise OptionError(f"the batch size must be at least 1, not {batch_size}")
    if dynamo and opset < DYNAMO_MIN_OPSET:
        raise OptionError(f"the dynamo exporter writes opset {DYNAMO_MIN_OPSET} or newer; pass --opset 18")
    param = next(model.parameters())
    example = torch.zeros(batch_size, input_channels(model), example_height, example_width, device=param.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            for category, message in _QUIET:
                warnings.filterwarnings("ignore", message=message, category=category)
            for module in _QUIET_TRACER_MODULES:
                warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=module)
            out_shape = tuple(model(example).shape)
            proto = (
                _export_dynamo(model, example, opset, dynamic, multiple)
                if dynamo
                else _export_torchscript(model, example, opset, dynamic)
            )
    finally:
        model.train(was_training)
    _name_io_axes(proto, tuple(example.shape), out_shape, dynamic)
    meta = {"size_multiple": str(multiple), "input_layout": "NCHW", **(metadata or {})}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:  # a bug here or in torch, not the user's; keep it one line anyway
        raise SynthError(f"the exported ONNX graph fails onnx.checker: {str(exc).strip().splitlines()[0]}") from None
    return atomic_write_bytes(path, proto.SerializeToString())


def _export_torchscript(model: nn.Module, example: torch.Tensor, opset: int, dynamic: bool):  # -> onnx.ModelProto
    import onnx

    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (example,),
        buffer,
        dynamo=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        dynamic_axes={INPUT_NAME: AXES, OUTPUT_NAME: AXES} if dynamic else None,
        do_constant_folding=True,
    )
    return onnx.load_from_string(buffer.getvalue())


def _export_dynamo(model: nn.Module, example: torch.Tensor, opset: int, dynamic: bool, multiple: int):
    """torch.export-based export; height and width are declared as ``multiple * k`` so the stride is a guarantee."""
    shapes = None
    if dynamic:
        dim = torch.export.Dim
        shapes = ({0: dim("batch"), 2: multiple * dim("h"), 3: multiple * dim("w")},)
    program = torch.onnx.export(
        model,
        (example,),
        None,
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        dynamic_shapes=shapes,
        verbose=False,
    )
    return program.model_proto


def _name_io_axes(proto, in_shape: tuple[int, ...], out_shape: tuple[int, ...], dynamic: bool) -> None:
    """Write the true shapes on the graph's input and output: the exporters' shape inference loses the output's
    (the reflection pads) and torch.export names axes after its symbols ("4*h")."""
    for value, shape in ((proto.graph.input[0], in_shape), (proto.graph.output[0], out_shape)):
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for axis, size in enumerate(shape):
            free = dynamic and axis in AXES and (axis == 0 or size == in_shape[axis])
            if free:
                dims.add().dim_param = AXES[axis]
            else:
                dims.add().dim_value = size


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise SynthError("ONNX export needs the onnx package: pip install 'synth[onnx]'") from None
    return onnx


def describe_io(path: str | Path) -> list[str]:
    """One line per graph input and output of an ONNX file: ``input  semantics  float32 [batch, 6, height, width]``."""
    onnx = _import_onnx()
    graph = onnx.load(str(path), load_external_data=False).graph
    lines = []
    for kind, values in (("input ", graph.input), ("output", graph.output)):
        for value in values:
            tensor = value.type.tensor_type
            dims = [d.dim_param or str(d.dim_value) for d in tensor.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
            lines.append(f"{kind} {value.name}  {dtype} [{', '.join(dims)}]")
    return lines


def channel_layout(opt: argparse.Namespace, channels: int) -> str:
    """What the input channels are, in order, for the options of a pix2pixHD-style run."""
    from synth.data.preprocess import effective_label_nc

    parts = []
    if opt.label_nc:
        parts.append(f"{opt.label_nc} one-hot labels")
        if opt.contain_dontcare_label:
            parts.append("1 don't-care")
    else:
        parts.append(f"{opt.input_nc} image channels")
    used = effective_label_nc(opt.label_nc, opt.contain_dontcare_label) if opt.label_nc else opt.input_nc
    if not opt.no_instance:
        parts.append("1 instance boundary")
        used += 1
    if channels > used:
        parts.append(f"{channels - used} feature")
    return " + ".join(parts)
