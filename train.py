"""Train a layout-to-image model: ``python train.py --name NAME --dataroot DIR [flags]`` (same as ``synth-train``)."""

from synth.commands.train import main

if __name__ == "__main__":
    raise SystemExit(main())
