"""``synth-eval``: FID / KID / mIoU / accuracy of a results folder (see docs/evaluation.md)."""

from __future__ import annotations

from collections.abc import Sequence

from synth.commands.runner import arguments, run_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate, print the table, write JSON and CSV; a SynthError becomes one line and exit status 2."""
    from synth.metrics.evaluate import run

    return run_cli(lambda: (run(arguments(argv)), 0)[1])
