"""How the modulated generator paints per-instance codes at inference: a gather by instance id against the dense
``[B, N, H, W]`` masks the training pass keeps (both give the same map, bit for bit).

Times, in one run, at each size: building the masks of levels 1..n (scatter-add into level 1 vs average-pooling the
full-resolution one-hot); one level-0 modulation map (gather vs one-hot einsum; G has two such layers); and the
whole generator forward under ``torch.inference_mode()`` as it now runs. Random weights and codes (speed only).

    python bench/modulated_paint.py                          # 512x256 and 1024x512, 40 objects, ngf 64
    python bench/modulated_paint.py --sizes 256x128 --objects 140 --iters 5
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from common import machine_info, markdown_table, parse_size, print_machine, synthetic_sample, time_callable

from synth.models.networks.generator_modulated import (  # noqa: E402
    ModulatedGenerator,
    full_resolution_masks,
    instance_weights,
)
from synth.models.networks.segments import index_segments, paint  # noqa: E402

LABEL_NC = 36  # 35 Cityscapes labels + the instance boundary channel


def pooled_one_hot_levels(index, levels: int) -> list[torch.Tensor]:
    """The masks of levels 1..n as built before: the full-resolution one-hot, then repeated average pooling."""
    weights = [full_resolution_masks(index, torch.float32)]
    for _ in range(levels):
        weights.append(F.avg_pool2d(weights[-1], 2))
    return weights[1:]


def measure(width: int, height: int, objects: int, ngf: int, warmup: int, iters: int) -> dict:
    _, inst, _ = synthetic_sample(width, height, np.random.default_rng(0), objects)
    segments = torch.from_numpy(inst.astype(np.int64)).view(1, 1, height, width)
    g = ModulatedGenerator(LABEL_NC, 3, ngf=ngf, n_downsampling=4, n_blocks=9).eval()
    index = index_segments(segments)
    codes = [torch.randn(index.count, n) for n in g.num_codes]
    level0 = codes[g.stem.norm.layer_number]
    layout = torch.randn(1, LABEL_NC, height, width)
    with torch.inference_mode():
        assert torch.equal(paint(level0, index).contiguous(),
                           torch.einsum("bnhw,nc->bchw", full_resolution_masks(index, torch.float32), level0))
        timed = {
            "masks 1..n: scatter-add": lambda: instance_weights(index, 4, torch.float32),
            "masks 1..n: pooled one-hot": lambda: pooled_one_hot_levels(index, 4),
            "level-0 map: gather": lambda: paint(level0, index),
            "level-0 map: one-hot einsum": lambda: torch.einsum(
                "bnhw,nc->bchw", full_resolution_masks(index, torch.float32), level0),
            "G forward (gather)": lambda: g(layout, index, codes),
        }
        results = {name: time_callable(fn, warmup, iters) for name, fn in timed.items()}
    return {"segments": int(index.count), "timings": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="512x256,1024x512")
    parser.add_argument("--objects", type=int, default=40, help="thing instances drawn per image")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    info = machine_info()
    print_machine(info)
    rows = []
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        width, height = parse_size(size)
        result = measure(width, height, args.objects, args.ngf, args.warmup, args.iters)
        t = {name: r["median_s"] for name, r in result["timings"].items()}
        for name, r in result["timings"].items():
            ms = f"{r['median_s'] * 1000:.1f} (IQR {r['iqr_s'] * 1000:.1f})"
            rows.append([size, str(result["segments"]), name, ms])
        saved = (t["masks 1..n: pooled one-hot"] - t["masks 1..n: scatter-add"]
                 + 2 * (t["level-0 map: one-hot einsum"] - t["level-0 map: gather"]))
        rows.append([size, str(result["segments"]), "G forward as before (estimated: + the savings above)",
                     f"{(t['G forward (gather)'] + saved) * 1000:.1f} "
                     f"({(t['G forward (gather)'] + saved) / t['G forward (gather)']:.2f}x the gather's)"])
    print(markdown_table(["size", "segments", "work", "median ms"], rows))


if __name__ == "__main__":
    main()
