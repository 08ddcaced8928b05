"""``synth-precompute-features --name RUN``: pix2pixHD's ``precompute_feature_maps.py``; a feature run's E writes
``{dataroot}/{phase}_feat/{key}.npz`` for each training image (for ``synth-train ... --load_features``)."""

from __future__ import annotations

from collections.abc import Sequence

from synth.commands.runner import arguments, run_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Write the feature maps of the training images (``--phase`` train unless given); prints where."""

    def body() -> int:
        from synth.feature_maps import precompute_feature_maps
        from synth.options import parse_test_options

        opt = parse_test_options(["--phase", "train", *arguments(argv)])
        written = precompute_feature_maps(opt, progress=not opt.no_progress)
        print(f"wrote {len(written)} feature maps to {written[0].parent if written else opt.dataroot}")
        return 0

    return run_cli(body)
