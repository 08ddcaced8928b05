"""``synth-test`` (and ``python test.py``): synthesize a split or a folder of label maps; prints the results page."""

from __future__ import annotations

from collections.abc import Sequence

from synth.commands.runner import arguments, run_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the test flags, run batch inference, print the results page."""

    def body() -> int:
        from synth.inference import run_inference
        from synth.options import parse_test_options

        opt = parse_test_options(arguments(argv))
        if opt.export_onnx:  # pix2pixHD's test.py --export_onnx FILE: export the generator and stop
            from synth.commands.export_onnx import main as export_main
            from synth.options.parse import without_flags

            return export_main(["--output", opt.export_onnx, *without_flags(arguments(argv), ("--export_onnx",))])
        page = run_inference(opt)
        print(f"results page: {page}")
        return 0

    return run_cli(body)
