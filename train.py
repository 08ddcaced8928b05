"""Train a layout-to-image model: ``python train.py --name NAME --dataroot DIR [flags]`` (same as ``synth-train``)."""

from synth.cli import train_main

if __name__ == "__main__":
    raise SystemExit(train_main())
