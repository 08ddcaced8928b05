"""``synth-encode-features --name NAME``: encode the training set with E, cluster per class, save the npz."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import DataLoader

from synth.commands.runner import arguments, run_cli
from synth.core.errors import OptionError
from synth.data import create_dataset
from synth.features import DEFAULT_MIN_AREA_FRACTION, collect_instance_features, default_cluster_path, fit_clusters
from synth.models.pix2pixhd_model import generator_size_multiple


def main(argv: Sequence[str] | None = None) -> int:
    """``synth-encode-features --name NAME``: encode the training set with E, cluster per class, save the npz."""
    parser = argparse.ArgumentParser(prog="synth-encode-features", add_help=False)
    parser.add_argument("--min_area_fraction", type=float, default=DEFAULT_MIN_AREA_FRACTION)
    args, rest = parser.parse_known_args(arguments(argv))

    def body() -> int:
        from synth.inference import load_generator
        from synth.options import parse_test_options

        opt = parse_test_options(["--phase", "train", *rest])
        model = load_generator(opt)
        if not model.use_features:
            raise OptionError(f"{opt.name}: this model was trained without --instance_feat / --label_feat")
        opt.size_multiple = generator_size_multiple(opt)
        opt.need_feature_maps = not model.has_encoder  # a --load_features run: cluster its precomputed maps
        dataset = create_dataset(opt)
        if model.has_encoder and not dataset.has_images:
            raise OptionError(f"{opt.dataroot}: encoding features needs the real images of phase '{opt.phase}'")
        loader = DataLoader(dataset, batch_size=opt.batchSize, shuffle=False, num_workers=opt.nThreads)
        features = collect_instance_features(model, loader, args.min_area_fraction, not opt.no_progress)
        clusters = fit_clusters(features, opt.n_clusters, opt.seed)
        path = clusters.save(Path(opt.cluster_path) if opt.cluster_path else default_cluster_path(opt))
        counts = ", ".join(f"{c}: {len(v)}" for c, v in sorted(clusters.centers.items()))
        print(f"wrote {path} (clusters per class: {counts})")
        return 0

    return run_cli(body)
