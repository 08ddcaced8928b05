"""Share of a pix2pixHD training step spent in the instance feature encoder E and instance-wise pooling.

Reference config (batch 1, label_nc 35, instances, global G, num_D 2, FM + VGG) with ``--instance_feat``
(feat_num 3, nef 16, 4 down-samplings). Times, in one run: the whole ``train_step``; E's forward + pooling +
backward through them alone; pooling alone (forward + backward). Shares are of the whole step's median.

    python bench/encoder_share.py                 # 512x256
    python bench/encoder_share.py --size 256x128 --iters 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from common import (
    machine_info,
    make_dataset,
    markdown_table,
    parse_size,
    print_machine,
    save_random_vgg19,
    temp_dir,
    time_callable,
    train_options,
)

from synth.models.networks.instance_pool import instance_average_pool  # noqa: E402
from synth.trainer import Trainer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="512x256")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)
    width, height = parse_size(args.size)
    print_machine(machine_info())
    with temp_dir("synth-bench-") as tmp:
        tmp = Path(tmp)
        root = make_dataset(tmp / "data", width, height)
        vgg = save_random_vgg19(tmp / "vgg19.pth")
        trainer = Trainer(train_options(root, tmp / "run", ["--vgg_weights", str(vgg), "--instance_feat"]))
        batch = next(iter(trainer.loader))
        model = trainer.model
        _, real = model.encode_input(batch)
        segments = model.segment_ids(batch)

        def encoder_pass() -> None:
            model.encode_features(real, segments).sum().backward()

        raw = torch.randn(1, 3, height, width, requires_grad=True)

        def pooling_pass() -> None:
            instance_average_pool(raw, segments).sum().backward()

        step = time_callable(lambda: trainer.train_step(batch), args.warmup, args.iters)
        encoder = time_callable(encoder_pass, args.warmup, args.iters)
        pooling = time_callable(pooling_pass, args.warmup, args.iters)
    rows = [
        ["whole training step", f"{step['median_s']:.3f}", "100 %"],
        ["E forward + pooling + backward", f"{encoder['median_s']:.3f}",
         f"{100 * encoder['median_s'] / step['median_s']:.1f} %"],
        ["pooling alone (forward + backward)", f"{pooling['median_s']:.4f}",
         f"{100 * pooling['median_s'] / step['median_s']:.2f} %"],
    ]
    print(f"\n{width}x{height}, batch 1, instance features (feat_num 3, nef 16, 4 down-samplings)")
    print(markdown_table(["part", "median s", "share of the step"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
