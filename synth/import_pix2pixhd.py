"""``synth-import-pix2pixhd``: turn a pix2pixHD run's ``{epoch}_net_G.pth`` / ``_net_D.pth`` / ``_net_E.pth`` into a
synth checkpoint (key names mapped by ``models.pix2pixhd_import``) and its ``features_clustered_NNN.npy`` into our
cluster files, so ``test.py --name NAME`` runs pix2pixHD's published models, feature runs with their clusters."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from synth.checkpoint import checkpoint_path, run_dir, save_checkpoint
from synth.core.errors import CheckpointError, OptionError
from synth.features import FeatureClusters
from synth.models.networks import build_discriminator
from synth.models.pix2pixhd_import import (
    convert_pix2pixhd_discriminator,
    convert_pix2pixhd_encoder,
    convert_pix2pixhd_generator,
    load_pix2pixhd_file,
    read_pix2pixhd_clusters,
)
from synth.models.pix2pixhd_model import Pix2PixHDModel, semantic_channels
from synth.options import options_to_dict


def import_pix2pixhd_run(
    pix2pixhd_dir: str | Path, which_epoch: str, opt: argparse.Namespace, overwrite: bool = False
) -> list[Path]:
    """Turn pix2pixHD's ``{epoch}_net_G.pth`` (and ``_net_D.pth`` when present; ``_net_E.pth`` and its
    ``features_clustered_NNN.npy`` for a feature run) into a synth run that ``test.py --name NAME`` can use;
    ``opt`` holds the same architecture flags the pix2pixHD run was trained with. An existing ``latest.pt`` of run
    NAME (a trained run's optimizers, schedule, RNG) is replaced only with ``overwrite``. Returns the files written."""
    if getattr(opt, "use_dropout", False):
        raise OptionError("--use_dropout: pix2pixHD parsed this flag but never built dropout into its generator, so "
                          "its files have none; import without --use_dropout")
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
    encoder = _encoder_weights(source / f"{which_epoch}_net_E.pth", model)
    if encoder is not None:
        nets["E"] = encoder
    d_file = source / f"{which_epoch}_net_D.pth"
    if d_file.is_file():
        with torch.device("meta"):  # only the structure is needed to map the keys
            netD = build_discriminator(opt, semantic_channels(opt) + opt.output_nc)
        nets["D"] = convert_pix2pixhd_discriminator(load_pix2pixhd_file(d_file), netD)
    written = [save_checkpoint(target, {"options": options_to_dict(opt), "nets": nets})]
    if model.use_features:
        written += _import_clusters(source, opt)
    return written


def _encoder_weights(e_file: Path, model: Pix2PixHDModel) -> dict[str, torch.Tensor] | None:
    """E's converted weights; a feature run needs the file, a run without features must not have one."""
    if not model.has_encoder:
        if e_file.is_file():
            raise CheckpointError(
                f"{e_file}: this pix2pixHD run has a feature encoder; pass the flags it was trained with "
                "(--instance_feat or --label_feat, --feat_num ...)"
            )
        return None
    if not e_file.is_file():
        raise CheckpointError(f"{e_file}: pix2pixHD encoder file not found (a --instance_feat run saves one)")
    return convert_pix2pixhd_encoder(load_pix2pixhd_file(e_file), model.netE)


def _import_clusters(source: Path, opt: argparse.Namespace) -> list[Path]:
    """Each ``features_clustered_NNN.npy`` of the pix2pixHD run as our ``features_clustered_NNN.npz``."""
    written = []
    for npy in sorted(source.glob("features_clustered_*.npy")):
        clusters = FeatureClusters(opt.feat_num, read_pix2pixhd_clusters(npy, opt.feat_num))
        written.append(clusters.save(run_dir(opt) / f"{npy.stem}.npz"))
    return written
