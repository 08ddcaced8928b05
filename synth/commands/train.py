"""``synth-train`` (and ``python train.py``): train or continue a run; prints the last checkpoint."""

from __future__ import annotations

from collections.abc import Sequence

from synth.commands.runner import arguments, run_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Parse pix2pixHD's training flags (and ``--config``), train, print the checkpoint written last."""

    def body() -> int:
        from synth.options import parse_train_options
        from synth.trainer import train

        last = train(parse_train_options(arguments(argv)))
        print(f"saved {last}")
        return 0

    return run_cli(body)
