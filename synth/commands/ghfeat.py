"""``synth-ghfeat {reconstruct,mix,cluster,retrieve,probe,harmonise} --name NAME ...`` (see docs/ghfeat.md)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
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
from synth.ghfeat import (
    DEFAULT_MIN_AREA_FRACTION,
    InstanceCodes,
    cluster_codes,
    collect_codes,
    decode,
    encode,
    harmonise,
    highlighted,
    linear_probe,
    retrieve,
    save_clusters,
    style_mix,
)
from synth.models.networks.generator_modulated import GROUPS
from synth.options.validate import COMMAND_RANGES, check_ranges


def _codes_of(model, opt, dataset, min_area: float) -> InstanceCodes:
    """The instance codes of ``dataset``; DataError when no instance is large enough (an empty result)."""
    loader = DataLoader(dataset, batch_size=opt.batchSize, shuffle=False, num_workers=opt.nThreads)
    codes = collect_codes(model, loader, min_area, not opt.no_progress)
    if not len(codes.ids):
        raise DataError(f"{opt.dataroot}: no instance of the {len(dataset)} images of phase '{opt.phase}' covers "
                        f"more than --min_area_fraction {min_area:g} of its image")
    return codes


def main(argv: Sequence[str] | None = None) -> int:
    """``synth-ghfeat {reconstruct,mix,cluster,retrieve,probe,harmonise} --name NAME ...`` (see docs/ghfeat.md)."""
    from synth.visualize import save_png, tensor_to_image

    parser = StrictParser(prog="synth-ghfeat", add_help=False)
    parser.add_argument("command", choices=("reconstruct", "mix", "cluster", "retrieve", "probe", "harmonise"))
    parser.add_argument("--out", default=None, help="output folder (default results/NAME/ghfeat)")
    parser.add_argument("--split", default="test", help="split to reconstruct, mix, query or probe on")
    parser.add_argument("--recipient", default=None, help="sample key (mix, harmonise)")
    parser.add_argument("--donor", default=None, help="sample key (mix, harmonise)")
    parser.add_argument("--recipient_instance", type=int, default=None)
    parser.add_argument("--donor_instance", type=int, default=None)
    parser.add_argument("--group", default="coarse", choices=GROUPS)
    parser.add_argument("--k", type=int, default=5, help="neighbours to retrieve")
    parser.add_argument("--query", default=None, help="KEY:INSTANCE to retrieve neighbours of")
    parser.add_argument("--min_area_fraction", type=float, default=DEFAULT_MIN_AREA_FRACTION)
    parser.add_argument("--overwrite", action="store_true", help="cluster: replace an existing cluster file")

    def body() -> int:
        args, rest = parser.parse_known_args(arguments(argv))
        check_ranges(args, COMMAND_RANGES)
        model, opt = load_run(rest, "reconstruct", "GH-Feat (--model ghfeat or ghfeat_baseline)")
        out_dir = Path(args.out) if args.out else Path(opt.results_dir) / opt.name / "ghfeat"
        if args.command == "reconstruct":
            dataset = split_dataset(opt, args.split)
            loader = DataLoader(dataset, batch_size=opt.batchSize, shuffle=False, num_workers=opt.nThreads)
            total, count = 0.0, 0
            for batch in loader:
                enc = encode(model, batch)
                fake = decode(model, enc)
                total += float(((fake - enc.real) ** 2).mean(dim=(1, 2, 3)).sum())
                count += fake.shape[0]
                for i, key in enumerate(batch["key"]):
                    if count - fake.shape[0] + i < opt.how_many:
                        strip = np.concatenate([tensor_to_image(enc.real[i]), tensor_to_image(fake[i])], axis=1)
                        save_png(out_dir / f"{key}_reconstruction.png", strip)
            print(f"reconstruction MSE over {count} {args.split} images: {total / max(count, 1):.5f} "
                  f"(images in {out_dir})")
        elif args.command in ("mix", "harmonise"):
            if not (args.recipient and args.donor):
                raise OptionError(f"{args.command} needs --recipient KEY and --donor KEY")
            dataset = split_dataset(opt, args.split)
            rec, don = sample_batch(dataset, args.recipient), sample_batch(dataset, args.donor)
            if args.command == "mix":
                image = style_mix(model, rec, don, args.group, args.recipient_instance, args.donor_instance)
                name = f"{args.recipient}_{args.group}_from_{args.donor}.png"
                row = [rec["image"][0], don["image"][0], image[0].cpu()]
            else:
                if args.donor_instance is None:
                    raise OptionError("harmonise needs --donor_instance (the object pasted from the donor)")
                mask = (don["inst"] == args.donor_instance)
                composite, image = harmonise(model, {**rec, "inst": torch.where(mask, don["inst"], rec["inst"]),
                                                     "label": torch.where(mask, don["label"], rec["label"])},
                                             don["image"], mask)
                name = f"{args.recipient}_harmonised_{args.donor}_{args.donor_instance}.png"
                row = [rec["image"][0], composite[0].cpu(), image[0].cpu()]
            path = save_png(out_dir / name, np.concatenate([tensor_to_image(x) for x in row], axis=1))
            print(f"wrote {path}")
        elif args.command == "cluster":
            from synth.checkpoint import run_dir

            target = run_dir(opt) / f"ghfeat_clusters_{opt.n_clusters:03d}.npz"
            refuse_existing(target, args.overwrite, "cluster file", "--n_clusters N")
            codes = _codes_of(model, opt, split_dataset(opt, "train"), args.min_area_fraction)
            path = save_clusters(target, cluster_codes(codes, opt.n_clusters, opt.seed))
            print(f"wrote {path} ({len(codes.ids)} instances, groups: {', '.join(codes.groups)})")
        elif args.command == "retrieve":
            if not args.query or ":" not in args.query:
                raise OptionError("retrieve needs --query KEY:INSTANCE (an instance of --split)")
            key, inst = args.query.rsplit(":", 1)
            gallery_set, query_set = split_dataset(opt, "train"), split_dataset(opt, args.split)
            gallery = _codes_of(model, opt, gallery_set, args.min_area_fraction)
            queries = _codes_of(model, opt, query_set, 0.0)
            rows = [i for i, (k, v) in enumerate(zip(queries.keys, queries.ids, strict=True))
                    if k == key and v == int(inst)]
            if not rows:
                raise OptionError(f"instance {inst} of '{key}' not found in split '{args.split}'")
            groups = [args.group] if "--group" in (argv or sys.argv) else None
            found = retrieve(queries.vectors(groups)[rows], gallery.vectors(groups), args.k)[0]
            for rank, row in enumerate(found, 1):
                print(f"{rank}. {gallery.keys[row]}:{gallery.ids[row]} (class {gallery.classes[row]})")
            tiles = [highlighted(sample_batch(query_set, key), int(inst))]
            tiles += [highlighted(sample_batch(gallery_set, gallery.keys[row]), int(gallery.ids[row])) for row in found]
            path = save_png(out_dir / f"{key}_{inst}_retrieval.png", np.concatenate(tiles, axis=1))
            print(f"wrote {path} (query | neighbours, other instances dimmed)")
        elif args.command == "probe":
            train = _codes_of(model, opt, split_dataset(opt, "train"), args.min_area_fraction)
            test = _codes_of(model, opt, split_dataset(opt, args.split), args.min_area_fraction)
            for group in [*train.groups, "all"]:
                chosen = None if group == "all" else [group]
                accuracy = linear_probe(train.vectors(chosen), train.classes, test.vectors(chosen), test.classes)
                print(f"linear probe (class) on {group} codes: {accuracy:.3f}")
        return 0

    return run_cli(body)
