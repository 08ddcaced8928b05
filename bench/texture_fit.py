"""Cost of the Fourier texture fits in one modulated-G step (``--fourier_texture``), with and without sharing the
fit's normal equations across the step.

A step fits the bank three times on one instance numbering: E's read-out of the real image's fine band, and the
texture layer's own-band fit in the reconstruction and in the band-control pass. The normal equations depend on
the masks only, so ``SegmentIndex.derived`` keeps them; the baseline clears it before every fit (each fit factorises
its own, as before the cache). Times, in one run: the three fits plus the two layer passes, forward + backward.

    python bench/texture_fit.py                   # 256x128 and 512x256, batch 1
    python bench/texture_fit.py --sizes 128x64 --iters 5
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import machine_info, markdown_table, parse_size, print_machine, synthetic_sample, time_callable

from synth.models.networks.fourier_texture import FourierBank, FourierTextureLayer, fourier_coefficients  # noqa: E402
from synth.models.networks.segments import frequency_bands, index_segments  # noqa: E402

CELL = 8  # the coarsest cell of a generator with 3 down-samplings


def fits_of_a_step(real: torch.Tensor, fake: torch.Tensor, index, layer: FourierTextureLayer, shared: bool
                   ) -> None:
    """E's read-out, then the layer on the reconstruction and on the band-control pass; backward through all."""
    def fresh() -> None:
        if not shared:
            index.derived.clear()

    fresh()
    codes = fourier_coefficients(frequency_bands(real, index, CELL)["fine"], index, layer.bank)
    outputs = []
    for _ in range(2):
        fresh()
        outputs.append(layer(fake, index, codes))
    sum(o.square().mean() for o in outputs).backward()


def measure(width: int, height: int, warmup: int, iters: int) -> dict:
    label, inst, image = synthetic_sample(width, height, np.random.default_rng(0))
    segments = torch.from_numpy(inst.astype(np.int64)).view(1, 1, height, width)
    real = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float() / 127.5 - 1
    layer = FourierTextureLayer(FourierBank.for_cell(CELL), CELL)
    results = {}
    for shared in (False, True):
        def step(shared: bool = shared) -> None:
            index = index_segments(segments)  # a step numbers its instances once
            fake = (real * 0.9).requires_grad_()
            fits_of_a_step(real, fake, index, layer, shared)

        results["shared" if shared else "per fit"] = time_callable(step, warmup, iters)
    results["instances"] = int(index_segments(segments).count)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256x128,512x256")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    print_machine(machine_info())
    rows = []
    for size in args.sizes.split(","):
        width, height = parse_size(size)
        r = measure(width, height, args.warmup, args.iters)
        base, shared = r["per fit"]["median_s"], r["shared"]["median_s"]
        rows.append([size, str(r["instances"]), f"{base:.3f}", f"{shared:.3f}", f"{shared / base:.2f}"])
    print(markdown_table(["size", "instances", "per fit (s)", "shared (s)", "shared / per fit"], rows))


if __name__ == "__main__":
    main()
