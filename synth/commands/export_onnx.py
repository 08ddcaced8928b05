"""``synth-export-onnx --name NAME``: export a checkpoint's generator to ONNX (see docs/export.md)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from synth.commands.runner import StrictParser, arguments, run_cli
from synth.core.errors import OptionError
from synth.export import (
    DYNAMO_MIN_OPSET,
    INPUT_NAME,
    METADATA_KEYS,
    channel_layout,
    describe_io,
    export_generator_onnx,
    input_channels,
    size_multiple,
)
from synth.options.validate import COMMAND_RANGES, check_ranges


def build_parser() -> argparse.ArgumentParser:
    """The export flags; every other flag (``--name``, ``--checkpoints_dir``, ``--which_epoch``...) is synth-test's."""
    parser = StrictParser(
        prog="synth-export-onnx",
        allow_abbrev=False,
        description="Export the generator of checkpoints/NAME/<which_epoch>.pt to ONNX.",
        epilog="Other flags are synth-test's: --name NAME [--checkpoints_dir DIR] [--which_epoch latest|N] ...",
    )
    parser.add_argument("--output", default=None, help="ONNX file (default: checkpoints/NAME/generator_<epoch>.onnx)")
    parser.add_argument("--height", type=int, default=None, help="example height, a multiple of the stride")
    parser.add_argument("--width", type=int, default=None, help="example width, a multiple of the stride")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17; 18 with --dynamo)")
    parser.add_argument("--static", action="store_true", help="fix batch (--batchSize), height and width")
    parser.add_argument("--dynamo", action="store_true", help="use torch's torch.export-based exporter")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``synth-export-onnx``: export a checkpoint's generator; prints the file and its input and output."""
    def body() -> int:
        from synth.checkpoint import run_dir
        from synth.inference import load_generator
        from synth.options import parse_test_options

        args, rest = build_parser().parse_known_args(list(arguments(argv)))
        check_ranges(args, COMMAND_RANGES)
        if args.static and (args.height is None or args.width is None):
            raise OptionError("--static needs --height and --width")
        if not any(tok.split("=")[0] in ("--device", "--gpu_ids") for tok in rest):
            rest += ["--device", "cpu"]  # export on the CPU unless asked otherwise: same graph, no GPU needed
        opt = parse_test_options(rest)
        model = load_generator(opt)
        multiple = size_multiple(model)
        output = Path(args.output) if args.output else run_dir(opt) / f"generator_{opt.which_epoch}.onnx"
        opset = args.opset if args.opset is not None else (DYNAMO_MIN_OPSET if args.dynamo else 17)
        meta = {key: str(getattr(opt, key)) for key in METADATA_KEYS}
        default = 4 * multiple
        path = export_generator_onnx(
            model,
            output,
            default if args.height is None else args.height,
            default if args.width is None else args.width,
            opset=opset,
            dynamic=not args.static,
            batch_size=opt.batchSize if args.static else 1,
            dynamo=args.dynamo,
            metadata=meta,
        )
        print(f"wrote {path}")
        for line in describe_io(path):
            print(f"  {line}")
        print(f"  channels of {INPUT_NAME}: {channel_layout(opt, input_channels(model))}")
        if not args.static:
            print(f"  height and width must be multiples of {multiple}")
        return 0

    return run_cli(body)
