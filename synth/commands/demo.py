"""``synth-demo``: the whole product on a laptop CPU with no download — generate the procedural demo dataset,
train a small pix2pixHD on it, synthesize the test split and write the results page."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib.resources import as_file, files

from synth.commands.runner import StrictParser, arguments, run_cli
from synth.options.validate import COMMAND_RANGES, check_ranges


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the data, train with ``configs/demo.yaml`` (package data), synthesize; extra flags go to training."""
    parser = StrictParser(prog="synth-demo", description=__doc__)
    parser.add_argument("--dataroot", default="./datasets/demo", help="where the demo dataset is generated")
    parser.add_argument("--name", default="demo", help="experiment name")
    parser.add_argument("--n_train", type=int, default=200, help="training scenes to generate")
    parser.add_argument("--checkpoints_dir", default="./checkpoints")
    parser.add_argument("--results_dir", default="./results/")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--with_features", action="store_true",
                        help="also train the feature-conditioned demo (configs/demo_features.yaml, run NAME_features) "
                        "and its texture clusters, for style picking in synth-web")

    def body() -> int:
        args, extra = parser.parse_known_args(arguments(argv))
        check_ranges(args, COMMAND_RANGES)
        from synth.data.demo import DemoConfig, generate_demo_dataset

        root = generate_demo_dataset(args.dataroot, DemoConfig(n_train=args.n_train))
        print(f"demo dataset: {root}")
        train_and_test(args, "demo.yaml", args.name, root, extra)
        if args.with_features:
            name = f"{args.name}_features"
            train_and_test(args, "demo_features.yaml", name, root, extra, clusters=True)
            print(f"editor: synth-web --name {name} --checkpoints_dir {args.checkpoints_dir}")
        else:
            print(f"editor: synth-web --name {args.name} --checkpoints_dir {args.checkpoints_dir}")
        return 0

    return run_cli(body)


def train_and_test(args: argparse.Namespace, config_name: str, name: str, root, extra: list[str],
                   clusters: bool = False) -> None:
    """Train ``name`` with a packaged config, cluster its instance features when asked, synthesize the test split."""
    from synth.features import DEFAULT_MIN_AREA_FRACTION, cluster_training_set, named_cluster_path
    from synth.inference import load_generator, run_inference
    from synth.options import parse_test_options, parse_train_options
    from synth.trainer import train

    run = ["--name", name, "--checkpoints_dir", args.checkpoints_dir, "--device", args.device]
    # the demo trains its own runs again each time it is started (unless asked to continue them)
    fresh = [] if "--continue_train" in extra else ["--overwrite"]
    with as_file(files("synth.configs") / config_name) as config:
        last = train(parse_train_options(["--config", str(config), "--dataroot", str(root)] + run + extra + fresh))
    print(f"trained: {last}")
    if clusters:
        opt = parse_test_options(run + ["--phase", "train", "--dataroot", str(root)])
        # the model was just retrained, so its old clusters are replaced
        target = named_cluster_path(opt)
        print(f"clusters: {cluster_training_set(load_generator(opt), opt, DEFAULT_MIN_AREA_FRACTION, target)}")
    page = run_inference(parse_test_options(run + ["--results_dir", args.results_dir, "--how_many", "24"]))
    print(f"results page: {page}")


if __name__ == "__main__":
    raise SystemExit(main())
