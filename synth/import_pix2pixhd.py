"""``synth-import-pix2pixhd``: turn a pix2pixHD run's ``{epoch}_net_G.pth`` / ``_net_D.pth`` into a synth checkpoint
(key names mapped by ``models.pix2pixhd_import``), so ``test.py --name NAME`` runs pix2pixHD's published models."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from synth.checkpoint import checkpoint_path, save_checkpoint
from synth.core.errors import CheckpointError, OptionError
from synth.models.networks import build_discriminator
from synth.models.pix2pixhd_import import (
    convert_pix2pixhd_discriminator,
    convert_pix2pixhd_generator,
    load_pix2pixhd_file,
)
from synth.models.pix2pixhd_model import Pix2PixHDModel, semantic_channels
from synth.options import options_to_dict


def import_pix2pixhd_run(
    pix2pixhd_dir: str | Path, which_epoch: str, opt: argparse.Namespace, overwrite: bool = False
) -> Path:
    """Turn pix2pixHD's ``{epoch}_net_G.pth`` (and ``_net_D.pth`` when present) into a synth checkpoint that
    ``test.py --name NAME`` can use; ``opt`` holds the same architecture flags the pix2pixHD run was trained with.
    An existing ``latest.pt`` of run NAME (a trained run's optimizers, schedule, RNG) is replaced only with
    ``overwrite``."""
    target = checkpoint_path(opt, "latest")
    if target.exists() and not overwrite:
        raise OptionError(f"{target}: run '{opt.name}' already has a checkpoint; choose another --name or pass "
                          f"--overwrite to replace it")
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
    return save_checkpoint(target, {"options": options_to_dict(opt), "nets": nets})
