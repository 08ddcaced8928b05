"""Achieved GFLOP/s of the global generator's forward pass against one large convolution's, in the same run.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as 2). The large
convolution (512 -> 512 channels, 3x3, on a 128x64 map) shows what this CPU reaches on a well-shaped
convolution; the ratio says how much of that the generator's mix of layers achieves.

    python bench/flops.py                  # 512x256, pix2pixHD's global generator (label_nc 35 + instances)
    python bench/flops.py --size 256x128 --iters 5
"""

from __future__ import annotations

import argparse
import sys

import torch
from common import machine_info, markdown_table, parse_size, print_machine, time_callable  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode

from synth.models.networks import GlobalGenerator  # noqa: E402


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def measure(name: str, fn, warmup: int, iters: int) -> dict:
    with torch.inference_mode():
        flops = count_flops(fn)
        timing = time_callable(fn, warmup, iters)
    return {"name": name, "gflop": flops / 1e9, "median_s": timing["median_s"],
            "gflops_per_s": flops / 1e9 / timing["median_s"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="512x256", help="generator input WxH")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)
    width, height = parse_size(args.size)
    print_machine(machine_info())
    torch.manual_seed(0)
    generator = GlobalGenerator(36, 3, ngf=64, n_downsampling=4, n_blocks=9).eval()
    semantics = torch.rand(1, 36, height, width)
    conv = torch.nn.Conv2d(512, 512, 3, padding=1).eval()
    feature_map = torch.rand(1, 512, 64, 128)
    rows = [
        measure(f"global generator forward {width}x{height}", lambda: generator(semantics), args.warmup, args.iters),
        measure("conv 512->512 3x3 on 128x64", lambda: conv(feature_map), args.warmup, args.iters),
    ]
    reference = rows[1]["gflops_per_s"]
    table = [[r["name"], f"{r['gflop']:.1f}", f"{r['median_s']:.3f}", f"{r['gflops_per_s']:.1f}",
              f"{r['gflops_per_s'] / reference:.2f}"] for r in rows]
    print(markdown_table(["workload", "GFLOP", "median s", "GFLOP/s", "share of the large conv's rate"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
