"""``synth-selfcond {direction,label,sweep} --name RUN ...`` (see docs/selfcond.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from synth.commands.runner import (
    StrictParser,
    arguments,
    load_run,
    refuse_existing,
    run_cli,
    sample_batch,
    split_dataset,
)
from synth.core.errors import DataError, OptionError
from synth.ghfeat import DEFAULT_MIN_AREA_FRACTION
from synth.models.attributes import PseudoLabels, centroid_direction, fit_direction, flip_direction, pseudo_labels
from synth.options.validate import COMMAND_RANGES, check_ranges
from synth.selfcond import collect_object_codes, load_direction, read_labelled, save_direction, save_strip, sweep


def main(argv: Sequence[str] | None = None) -> int:
    """``synth-selfcond {direction,label,sweep} --name RUN ...`` (see docs/selfcond.md)."""
    parser = StrictParser(prog="synth-selfcond", add_help=False)
    parser.add_argument("command", choices=("direction", "label", "sweep"))
    parser.add_argument("--labelled", default=None, help="direction: CSV key,instance,value of labelled objects")
    parser.add_argument("--method", default="svm", choices=("svm", "logreg", "kmeans"),
                        help="direction: linear SVM, logistic regression, or K-means centroids (no labels)")
    parser.add_argument("--flip", action="store_true", help="direction: swap the positive and negative sides")
    parser.add_argument("--direction", action="append", default=[],
                        help="label: NAME=FILE of a direction (repeat for several attributes)")
    parser.add_argument("--out", default=None, help="output file (direction, label) or folder (sweep)")
    parser.add_argument("--image", default=None, help="sweep: sample key")
    parser.add_argument("--instance", type=int, default=None, help="sweep: instance id to edit")
    parser.add_argument("--attribute", default=None, help="sweep: attribute name (default the first)")
    parser.add_argument("--steps", type=int, default=5, help="sweep: label values from 0 to 1")
    parser.add_argument("--move_code", action="store_true",
                        help="sweep: also move the code along the direction (default: the condition alone)")
    parser.add_argument("--baseline_labels", default=None,
                        help="sweep with an un-fine-tuned --model modulated run: its pseudo-label file")
    parser.add_argument("--min_area_fraction", type=float, default=DEFAULT_MIN_AREA_FRACTION)
    parser.add_argument("--overwrite", action="store_true", help="direction, label: replace an existing file")

    def body() -> int:
        args, rest = parser.parse_known_args(arguments(argv))
        check_ranges(args, COMMAND_RANGES)
        from synth.checkpoint import run_dir

        model, opt = load_run(rest, "encode_codes", "instance-code (--model modulated or selfcond)")
        if args.command in ("direction", "label"):
            default_name = "direction.npz" if args.command == "direction" else "pseudo_labels.npz"
            target = Path(args.out) if args.out else run_dir(opt) / default_name
            refuse_existing(target, args.overwrite, f"{args.command} file", "--out FILE")
            loader = DataLoader(split_dataset(opt, "train"), batch_size=opt.batchSize, num_workers=opt.nThreads)
            objects = collect_object_codes(model, loader, args.min_area_fraction)
            if not len(objects.ids):
                raise DataError(f"{opt.dataroot}: no object (instance id >= 1000) of phase 'train' covers more than "
                                f"--min_area_fraction {args.min_area_fraction:g} of its image")
        if args.command == "direction":
            if args.method == "kmeans":
                direction = centroid_direction(objects.codes, opt.seed)
            else:
                if not args.labelled:
                    raise OptionError("direction needs --labelled CSV (or --method kmeans)")
                labelled = read_labelled(args.labelled)
                rows = objects.rows_of(list(labelled))
                direction = fit_direction(objects.codes[rows], np.array(list(labelled.values())), args.method,
                                          opt.seed)
            direction = flip_direction(direction) if args.flip else direction
            path = save_direction(target, direction)
            print(f"wrote {path} ({objects.codes.shape[1]}-dimensional codes)")
        elif args.command == "label":
            if not args.direction or any("=" not in d for d in args.direction):
                raise OptionError("label needs --direction NAME=FILE (one per attribute)")
            names = [d.split("=", 1)[0] for d in args.direction]
            files = [d.split("=", 1)[1] for d in args.direction]
            directions = [load_direction(f) for f in files]
            for file, direction in zip(files, directions, strict=True):
                if len(direction.normal) != objects.codes.shape[1]:
                    raise DataError(f"{file}: a direction in {len(direction.normal)}-d code space, but this run's "
                                    f"codes are {objects.codes.shape[1]}-d")
            labels = pseudo_labels(names, directions, objects.codes, objects.keys, objects.ids)
            path = labels.save(target)
            print(f"wrote {path} ({len(labels.ids)} objects, attributes: {', '.join(names)})")
        else:
            if args.image is None or args.instance is None:
                raise OptionError("sweep needs --image KEY and --instance ID")
            baseline = PseudoLabels.load(args.baseline_labels) if args.baseline_labels else None
            if baseline is None and not hasattr(model, "condition"):
                raise OptionError(f"{opt.name}: sweeping an un-fine-tuned run needs --baseline_labels FILE")
            batch = sample_batch(split_dataset(opt, opt.phase), args.image)
            images = sweep(model, batch, args.instance, args.steps, args.attribute, baseline, args.move_code).images
            out_dir = Path(args.out) if args.out else Path(opt.results_dir) / opt.name / "selfcond"
            path = save_strip(out_dir / f"{args.image}_{args.instance}_sweep.png", batch["image"][0], images)
            print(f"wrote {path}")
        return 0

    return run_cli(body)
