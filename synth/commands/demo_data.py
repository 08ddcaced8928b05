"""``synth-demo-data --out DIR``: write the procedural demo dataset (pix2pixHD layout, label_nc 5), no download."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from synth.commands.runner import StrictParser, arguments
from synth.core.errors import SynthError
from synth.data.demo import DEMO_LABEL_NC, DemoConfig, write_demo_dataset
from synth.options.validate import COMMAND_RANGES, check_ranges


def _parser() -> StrictParser:
    """The synth-demo-data argument parser."""
    d = DemoConfig()
    p = StrictParser(prog="synth-demo-data", description="Write the procedural demo dataset "
                                "(pix2pixHD folder layout, label_nc 5) in a few seconds, no download.")
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--n_train", type=int, default=d.n_train)
    p.add_argument("--n_test", type=int, default=d.n_test)
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=(d.width, d.height),
                   help="image size, multiples of 16")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--stripe_tail", type=float, default=d.stripe_tail,
                   help="stripe frequency ~ min + range * u**tail; share in bottom 30%% = 0.3**(1/tail)")
    p.add_argument("--hue_spread", type=float, default=d.hue_spread, help="1 = uniform hue for every class")
    p.add_argument("--brightness_min", type=float, default=d.brightness_min,
                   help="objects' brightness in [min, 1]; 1 = fixed")
    p.add_argument("--brightness_bottom_share", type=float, default=d.brightness_bottom_share,
                   help="share of objects in the bottom 30%% of the brightness range (0.3 = uniform)")
    p.add_argument("--overwrite", action="store_true", help="replace a demo dataset with another config")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (synth-demo-data): 0 on success, 2 with one 'error: ...' line on a SynthError."""
    try:
        args = _parser().parse_args(arguments(argv))
        check_ranges(args, COMMAND_RANGES)
        config = DemoConfig(width=args.size[0], height=args.size[1], n_train=args.n_train, n_test=args.n_test,
                            seed=args.seed, stripe_tail=args.stripe_tail, hue_spread=args.hue_spread,
                            brightness_min=args.brightness_min,
                            brightness_bottom_share=args.brightness_bottom_share)
        start = time.perf_counter()
        root, written = write_demo_dataset(args.out, config, args.overwrite)
    except SynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if written:
        print(f"wrote {config.n_train} train + {config.n_test} test demo images ({config.width}x{config.height}, "
              f"label_nc {DEMO_LABEL_NC}) to {root} in {time.perf_counter() - start:.1f}s")
    else:
        print(f"{root} already holds this demo dataset ({config.n_train} train + {config.n_test} test); "
              f"nothing written")
    return 0
