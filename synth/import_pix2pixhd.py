"""``synth-import-pix2pixhd``: turn a pix2pixHD run's ``{epoch}_net_G.pth`` / ``_net_D.pth`` into a synth checkpoint
(key names mapped by ``models.pix2pixhd_import``), so ``test.py --name NAME`` runs pix2pixHD's published models."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from models.networks import build_discriminator
from models.pix2pixhd_import import convert_pix2pixhd_discriminator, convert_pix2pixhd_generator, load_pix2pixhd_file
from models.pix2pixhd_model import Pix2PixHDModel, semantic_channels
from options import options_to_dict
from synth.checkpoint import checkpoint_path, save_checkpoint
from synth.errors import CheckpointError


def import_pix2pixhd_run(pix2pixhd_dir: str | Path, which_epoch: str, opt: argparse.Namespace) -> Path:
    """Turn pix2pixHD's ``{epoch}_net_G.pth`` (and ``_net_D.pth`` when present) into a synth checkpoint that
    ``test.py --name NAME`` can use; ``opt`` holds the same architecture flags the pix2pixHD run was trained with."""
    source = Path(pix2pixhd_dir)
    g_file = source / f"{which_epoch}_net_G.pth"
    if not g_file.is_file():
        raise CheckpointError(f"{g_file}: pix2pixHD generator file not found")
    model = Pix2PixHDModel(opt, for_training=False)
    nets = {"G": convert_pix2pixhd_generator(load_pix2pixhd_file(g_file), model.netG)}
    d_file = source / f"{which_epoch}_net_D.pth"
    if d_file.is_file():
        with torch.device("meta"):  # only the structure is needed to map the keys
            netD = build_discriminator(opt, semantic_channels(opt) + opt.output_nc)
        nets["D"] = convert_pix2pixhd_discriminator(load_pix2pixhd_file(d_file), netD)
    return save_checkpoint(checkpoint_path(opt, "latest"), {"options": options_to_dict(opt), "nets": nets})


def main(argv: list[str] | None = None) -> int:
    """``synth-import-pix2pixhd --pix2pixhd_dir DIR --name NAME [pix2pixHD's architecture flags]``."""
    import sys

    from synth.cli import run_cli

    parser = argparse.ArgumentParser(prog="synth-import-pix2pixhd", description=import_pix2pixhd_run.__doc__)
    parser.add_argument("--pix2pixhd_dir", required=True, help="pix2pixHD's checkpoints/NAME folder")
    parser.add_argument("--pix2pixhd_epoch", default="latest", help="which pix2pixHD epoch files to read")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        from options import parse_train_options

        path = import_pix2pixhd_run(args.pix2pixhd_dir, args.pix2pixhd_epoch, parse_train_options(rest))
        print(f"wrote {path}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
