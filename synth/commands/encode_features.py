"""``synth-encode-features --name NAME``: encode the training set with E, cluster per class, save the npz."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from synth.commands.runner import StrictParser, arguments, refuse_existing, run_cli
from synth.features import DEFAULT_MIN_AREA_FRACTION, FeatureClusters, cluster_training_set, named_cluster_path


def main(argv: Sequence[str] | None = None) -> int:
    """``synth-encode-features --name NAME``: encode the training set with E, cluster per class, save the npz."""
    parser = StrictParser(prog="synth-encode-features", add_help=False)
    parser.add_argument("--min_area_fraction", type=float, default=DEFAULT_MIN_AREA_FRACTION)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cluster file")

    def body() -> int:
        from synth.inference import load_generator
        from synth.options import parse_test_options
        from synth.options.validate import COMMAND_RANGES, check_ranges

        args, rest = parser.parse_known_args(arguments(argv))
        check_ranges(args, COMMAND_RANGES)
        opt = parse_test_options(["--phase", "train", *rest])
        target = Path(opt.cluster_path) if opt.cluster_path else named_cluster_path(opt)
        refuse_existing(target, args.overwrite, "cluster file", "--cluster_path FILE")
        path = cluster_training_set(load_generator(opt), opt, args.min_area_fraction, target)
        clusters = FeatureClusters.load(path)
        counts = ", ".join(f"{c}: {len(v)}" for c, v in sorted(clusters.centers.items()))
        print(f"wrote {path} (clusters per class: {counts})")
        return 0

    return run_cli(body)
