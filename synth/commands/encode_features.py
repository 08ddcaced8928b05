"""``synth-encode-features --name NAME``: encode the training set with E, cluster per class, save the npz."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import DataLoader

from synth.commands.runner import StrictParser, arguments, refuse_existing, run_cli
from synth.core.errors import DataError, OptionError
from synth.data import create_dataset
from synth.features import (
    DEFAULT_MIN_AREA_FRACTION,
    collect_instance_features,
    fit_clusters,
    named_cluster_path,
)
from synth.models.pix2pixhd_model import generator_size_multiple


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
        model = load_generator(opt)
        if not model.use_features:
            raise OptionError(f"{opt.name}: this model was trained without --instance_feat / --label_feat")
        opt.size_multiple = generator_size_multiple(opt)
        opt.need_feature_maps = not model.has_encoder  # a --load_features run: cluster its precomputed maps
        dataset = create_dataset(opt)
        if model.has_encoder and not dataset.has_images:
            raise OptionError(f"{opt.dataroot}: encoding features needs the real images of phase '{opt.phase}'")
        target = Path(opt.cluster_path) if opt.cluster_path else named_cluster_path(opt)
        refuse_existing(target, args.overwrite, "cluster file", "--cluster_path FILE")
        loader = DataLoader(dataset, batch_size=opt.batchSize, shuffle=False, num_workers=opt.nThreads)
        features = collect_instance_features(model, loader, args.min_area_fraction, not opt.no_progress)
        if not features:
            raise DataError(f"{opt.dataroot}: no instance of the {len(dataset)} images of phase '{opt.phase}' covers "
                            f"more than --min_area_fraction {args.min_area_fraction:g} of its image; nothing to "
                            f"cluster (nothing written)")
        clusters = fit_clusters(features, opt.n_clusters, opt.seed)
        path = clusters.save(target)
        counts = ", ".join(f"{c}: {len(v)}" for c, v in sorted(clusters.centers.items()))
        print(f"wrote {path} (clusters per class: {counts})")
        return 0

    return run_cli(body)
