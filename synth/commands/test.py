"""``synth-test`` (and ``python test.py``): synthesize a split or a folder of label maps; prints the results page."""

from __future__ import annotations

from collections.abc import Sequence

from synth.commands.runner import arguments, run_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the test flags, run batch inference, print the results page."""

    def body() -> int:
        from synth.inference import run_inference
        from synth.options import parse_test_options

        page = run_inference(parse_test_options(arguments(argv)))
        print(f"results page: {page}")
        return 0

    return run_cli(body)
