"""``synth-demo``: the whole product on a laptop CPU with no download — generate the procedural demo dataset,
train a small pix2pixHD on it, synthesize the test split and write the results page."""

from __future__ import annotations

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

    def body() -> int:
        args, extra = parser.parse_known_args(arguments(argv))
        check_ranges(args, COMMAND_RANGES)
        from synth.data.demo import DemoConfig, generate_demo_dataset
        from synth.inference import run_inference
        from synth.options import parse_test_options, parse_train_options
        from synth.trainer import train

        root = generate_demo_dataset(args.dataroot, DemoConfig(n_train=args.n_train))
        print(f"demo dataset: {root}")
        run = ["--name", args.name, "--checkpoints_dir", args.checkpoints_dir, "--device", args.device]
        # the demo trains its own run again each time it is started (unless asked to continue it)
        fresh = [] if "--continue_train" in extra else ["--overwrite"]
        with as_file(files("synth.configs") / "demo.yaml") as config:
            last = train(parse_train_options(["--config", str(config), "--dataroot", str(root)] + run + extra + fresh))
        print(f"trained: {last}")
        test_flags = run + ["--results_dir", args.results_dir, "--how_many", "24"]
        page = run_inference(parse_test_options(test_flags))
        print(f"results page: {page}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
