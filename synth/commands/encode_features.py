"""``synth-encode-features --name NAME``: encode the training set with E, cluster per class, save the npz."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from synth.commands.runner import arguments, run_cli
from synth.features import DEFAULT_MIN_AREA_FRACTION, FeatureClusters, cluster_training_set


def main(argv: Sequence[str] | None = None) -> int:
    """``synth-encode-features --name NAME``: encode the training set with E, cluster per class, save the npz."""
    parser = argparse.ArgumentParser(prog="synth-encode-features", add_help=False)
    parser.add_argument("--min_area_fraction", type=float, default=DEFAULT_MIN_AREA_FRACTION)
    args, rest = parser.parse_known_args(arguments(argv))

    def body() -> int:
        from synth.inference import load_generator
        from synth.options import parse_test_options

        opt = parse_test_options(["--phase", "train", *rest])
        path = cluster_training_set(load_generator(opt), opt, args.min_area_fraction)
        clusters = FeatureClusters.load(path)
        counts = ", ".join(f"{c}: {len(v)}" for c, v in sorted(clusters.centers.items()))
        print(f"wrote {path} (clusters per class: {counts})")
        return 0

    return run_cli(body)
