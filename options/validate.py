"""Checks of parsed options, run once at parse time: every flag with a range, ``--which_epoch``, paths that must be
folders, and image sizes against the generator's stride and depth.

The range table covers pix2pixHD's flags, the models' own flags (checked when the model adds them) and the
commands' own parsers (``check_ranges`` with their table). Each failure is one OptionError naming the flag.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from synth.core.errors import OptionError
from synth.data.transforms import minimum_side


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric flag: ``low <= v`` (``low < v`` when ``open_low``), ``v <= high`` likewise."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    note: str = ""

    def describe(self) -> str:
        """'at least 1', 'positive', 'in [0, 1)' ..."""
        if self.high is None:
            if self.low == 0:
                return "positive" if self.open_low else "at least 0"
            return f"greater than {self.low:g}" if self.open_low else f"at least {self.low:g}"
        left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"

    def holds(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)


AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
POSITIVE = Range(0, open_low=True)
FRACTION = Range(0, 1)
OFF_IF_0 = Range(0, note=" (0: off)")

#: The range of every numeric flag of synth-train / synth-test (pix2pixHD's and the models' own).
OPTION_RANGES: dict[str, Range] = {
    # experiment and data
    "seed": AT_LEAST_0,
    "batchSize": AT_LEAST_1,
    "loadSize": AT_LEAST_1,
    "fineSize": AT_LEAST_1,
    "label_nc": AT_LEAST_0,
    "input_nc": AT_LEAST_1,
    "output_nc": AT_LEAST_1,
    "nThreads": AT_LEAST_0,
    "max_dataset_size": Range(0, note=" (0: all)"),
    "canny_low": FRACTION,
    "canny_high": FRACTION,
    # generator, encoder, discriminator
    "ngf": AT_LEAST_1,
    "n_downsample_global": AT_LEAST_0,
    "n_blocks_global": AT_LEAST_0,
    "n_blocks_local": AT_LEAST_0,
    "n_local_enhancers": AT_LEAST_0,
    "feat_num": AT_LEAST_1,
    "nef": AT_LEAST_1,
    "n_downsample_E": AT_LEAST_0,
    "n_clusters": AT_LEAST_1,
    "num_D": AT_LEAST_1,
    "n_layers_D": AT_LEAST_1,
    "ndf": AT_LEAST_1,
    # schedule and optimiser
    "niter": AT_LEAST_0,
    "niter_decay": AT_LEAST_0,
    "niter_fix_global": AT_LEAST_0,
    "lr": POSITIVE,
    "lr_D": Range(0, note=" (0: same as --lr)"),
    "lr_decay_epochs": AT_LEAST_1,
    "lr_gamma": Range(0, 1, open_low=True),
    "beta1": Range(0, 1, open_high=True),
    "beta2": Range(0, 1, open_high=True),
    "max_iters": OFF_IF_0,
    # losses
    "lambda_feat": AT_LEAST_0,
    # saving and logging
    "save_epoch_freq": AT_LEAST_1,
    "save_latest_freq": OFF_IF_0,
    "display_freq": OFF_IF_0,
    "print_freq": OFF_IF_0,
    # inference
    "how_many": Range(0, note=" (0: all)"),
    "ntest": Range(0, note=" (caps --how_many)"),
    "aspect_ratio": POSITIVE,
    # pix2pixHD's spellings and display
    "local_rank": AT_LEAST_0,
    "display_winsize": AT_LEAST_1,
    "pool_size": Range(0, note=" (0: no image pool)"),
    # ECGAN
    "edge_steps": AT_LEAST_1,
    "ngf_label": AT_LEAST_1,
    "n_blocks_label": AT_LEAST_0,
    "contrast_dim": AT_LEAST_1,
    "lambda_final": AT_LEAST_0,
    "lambda_sim": AT_LEAST_0,
    "sim_pixels": AT_LEAST_1,
    "lambda_contrast": AT_LEAST_0,
    "contrast_temperature": POSITIVE,
    "contrast_anchors": AT_LEAST_1,
    "contrast_memory": Range(0, note=" (0: none)"),
    # modulated, GH-Feat, self-conditioning
    "lambda_l1": AT_LEAST_0,
    "lambda_band": AT_LEAST_0,
    "ghfeat_width": AT_LEAST_1,
    "lambda_mse": AT_LEAST_0,
    "lambda_perceptual": AT_LEAST_0,
    "lambda_adv": AT_LEAST_0,
    "r1_gamma": AT_LEAST_0,
    "lambda_attr": AT_LEAST_0,
    "lambda_attr_D": AT_LEAST_0,
    "lambda_locality": AT_LEAST_0,
    "sc_bins": AT_LEAST_1,
}

#: The numeric flags of the commands' own parsers (synth-encode-features, synth-ghfeat, synth-selfcond, ...).
COMMAND_RANGES: dict[str, Range] = {
    "min_area_fraction": Range(0, 1, open_high=True),
    "k": AT_LEAST_1,
    "steps": Range(2),
    "recipient_instance": AT_LEAST_0,
    "donor_instance": AT_LEAST_0,
    "instance": AT_LEAST_0,
    "height": AT_LEAST_1,
    "width": AT_LEAST_1,
    "opset": Range(7),
    "n_train": AT_LEAST_1,
    "n_test": AT_LEAST_1,
    "num_classes": AT_LEAST_0,
    "kid_subsets": AT_LEAST_1,
    "kid_subset_size": Range(2),
    "batch_size": AT_LEAST_1,
    "num_workers": AT_LEAST_0,
}

#: Image sizes the crop of each --resize_or_crop mode fixes at parse time (the rest depend on the files).
_CROP_MODES = ("resize_and_crop", "crop", "scale_width_and_crop")


def check_ranges(opt: argparse.Namespace, table: Mapping[str, Range] = OPTION_RANGES) -> None:
    """OptionError naming the first flag of ``table`` present in ``opt`` whose value is outside its range."""
    for key, rule in table.items():
        value = getattr(opt, key, None)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not rule.holds(value):
            raise OptionError(f"--{key} must be {rule.describe()}{rule.note}, got {value!r}")


def check_which_epoch(opt: argparse.Namespace) -> None:
    """``--which_epoch`` is 'latest' or an epoch number (1 or more); normalised to 'latest' or digits."""
    which = getattr(opt, "which_epoch", None)
    if which is None or which == "latest":
        return
    text = str(which).strip()
    if not text.isdigit() or int(text) < 1:
        raise OptionError(f"--which_epoch must be 'latest' or an epoch number (1 or more), got {which!r}")
    opt.which_epoch = str(int(text))


def check_folders(opt: argparse.Namespace) -> None:
    """Output folders that exist must be folders (a file there would fail only when the first result is written)."""
    for key in ("checkpoints_dir", "results_dir"):
        value = getattr(opt, key, None)
        if value and Path(value).exists() and not Path(value).is_dir():
            raise OptionError(f"--{key} {value}: is a file, not a folder")
    if not str(getattr(opt, "name", "x")).strip():
        raise OptionError("--name must not be empty")


def check_cluster_choice(opt: argparse.Namespace) -> None:
    """``--cluster_choice`` items are CLASS:INDEX pairs of non-negative integers."""
    for item in getattr(opt, "cluster_choice", None) or ():
        parts = str(item).split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            yaml_hint = " (in a YAML file, quote the pairs: '1:2')" if ":" not in str(item) else ""
            raise OptionError(
                f"--cluster_choice takes CLASS:INDEX pairs of non-negative integers, not '{item}'{yaml_hint}"
            )


def check_canny(opt: argparse.Namespace) -> None:
    if getattr(opt, "canny_low", 0) > getattr(opt, "canny_high", 1):
        raise OptionError(f"--canny_low ({opt.canny_low}) must not exceed --canny_high ({opt.canny_high})")


def check_sizes(opt: argparse.Namespace, size_multiple: int) -> None:
    """The sizes that the flags fix (the crop, scale_width's width) against the generator's stride and depth."""
    mode, fine, load = opt.resize_or_crop, opt.fineSize, opt.loadSize
    depth = f"--n_downsample_global {opt.n_downsample_global}" + (
        f" --n_local_enhancers {opt.n_local_enhancers}" if opt.netG == "local" else ""
    )
    sides = []
    if mode in _CROP_MODES:
        sides.append(("fineSize", fine))
        if mode != "crop" and fine > load:
            raise OptionError(
                f"--fineSize {fine} is larger than --loadSize {load}: the crop must fit the resized image"
            )
    if mode == "scale_width":
        sides.append(("loadSize", load))
    for key, side in sides:
        if side < minimum_side(size_multiple):
            raise OptionError(
                f"--{key} {side} is too small for the generator ({depth}: total stride {size_multiple}, so at least "
                f"{minimum_side(size_multiple)}); lower the depth or raise --{key}"
            )
        if side % size_multiple:
            raise OptionError(
                f"--{key} {side} is not a multiple of {size_multiple}, the generator's total stride ({depth})"
            )


def validate_options(opt: argparse.Namespace) -> None:
    """Every parse-time check that needs no file: ranges, --which_epoch, output folders, --cluster_choice."""
    check_ranges(opt)
    check_canny(opt)
    check_which_epoch(opt)
    check_folders(opt)
    check_cluster_choice(opt)
