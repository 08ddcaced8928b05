"""A pix2pixHD whose generator is style-modulated per instance (``--model modulated``, ``--netG modulated``).

While this model trains, each instance's codes come from pix2pixHD's instance encoder (a pooled ``--feat_num``
vector) through one affine map per layer (``PooledCodeEncoder``), trained jointly with G and judged by
pix2pixHD's losses. The trained G is what GH-Feat (``models/ghfeat_model.py``) inverts, frozen.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from models.base_model import LayoutModel, StepOutput
from models.losses import GANLoss, VGGLoss
from models.networks import build_discriminator, build_generator, init_weights
from models.networks.generator_modulated import Codes, ModulatedGenerator
from models.networks.hierarchical_encoder import BandCodeEncoder, frequency_bands
from models.networks.vgg import VGG19Features
from models.pix2pixhd_model import Pix2PixHDModel, semantic_channels
from models.registry import MODELS
from synth.errors import OptionError


def check_modulated(opt: argparse.Namespace) -> None:
    """The models built on the modulated generator need --netG modulated and no --instance_feat/--label_feat."""
    if opt.netG != "modulated":
        raise OptionError(f"--model {opt.model} needs --netG modulated, not '{opt.netG}'")
    if getattr(opt, "instance_feat", False) or getattr(opt, "label_feat", False):
        raise OptionError(f"--model {opt.model} carries instance codes itself: drop --instance_feat / --label_feat")


@MODELS.register("modulated")
class ModulatedModel(Pix2PixHDModel):
    """pix2pixHD's objective on the modulated generator, codes from ``PooledCodeEncoder`` (network ``E``)."""

    @staticmethod
    def add_options(parser: argparse.ArgumentParser, is_train: bool) -> None:
        """Defaults: the modulated generator, an 8-channel instance code, an encoder as deep as the demo's G."""
        parser.set_defaults(netG="modulated", feat_num=8, n_downsample_E=3)
        if is_train:
            parser.add_argument("--lambda_band", type=float, default=10.0,
                                help="weight of the band-control term: a random coarse (fine) group vector must "
                                     "leave the output's fine band (mean colours) as they are (0: off)")

    def __init__(self, opt: argparse.Namespace, for_training: bool, vgg: VGG19Features | None = None) -> None:
        LayoutModel.__init__(self, opt, for_training)
        check_modulated(opt)
        self.use_features = False  # codes are not input channels; see encode_codes / synthesize
        self.netG: ModulatedGenerator = build_generator(opt, semantic_channels(opt))
        self.netE = BandCodeEncoder(opt.output_nc, self.netG.num_codes, self.netG.layer_groups,
                                    self.netG.size_multiple, opt.feat_num, opt.nef, opt.n_downsample_E, opt.norm)
        for net in self.netE.texture.values():
            init_weights(net)
        if not for_training:
            return
        self.netD = build_discriminator(opt, semantic_channels(opt) + opt.output_nc)
        self.gan_loss = GANLoss(opt.gan_mode)
        if not opt.no_vgg_loss:
            self.vgg_loss = VGGLoss(vgg if vgg is not None else VGG19Features.from_weights(opt.vgg_weights))
        self._joint_d_pass = opt.norm != "batch"

    def networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {"G": self.netG, "E": self.netE}
        if self.for_training:
            nets["D"] = self.netD
        return nets

    def segment_ids(self, batch: dict) -> torch.Tensor:
        """Instance ids (label ids with --no_instance): what codes are pooled over and painted through."""
        device = next(self.netG.parameters()).device
        return batch["label" if self.opt.no_instance else "inst"].to(device, non_blocking=True)

    def encode_codes(self, real: torch.Tensor, segments: torch.Tensor) -> Codes:
        """Per-instance, per-layer codes of a real image."""
        return self.run("E", real, segments)

    def synthesize(self, semantics: torch.Tensor, segments: torch.Tensor, codes: Codes | None) -> torch.Tensor:
        """G on a layout with codes painted through its instances (None: zero modulation)."""
        return self.run("G", semantics, segments, codes)

    def forward(self, generator_input: torch.Tensor) -> torch.Tensor:
        """G alone with zero modulation (what ``synth-test`` renders without codes)."""
        return self.netG(generator_input)

    def compute_losses(self, batch: dict) -> StepOutput:
        """pix2pixHD's terms on a reconstruction whose codes come from the real image."""
        semantics, real = self.encode_input(batch)
        if real is None:
            raise ValueError("training needs real images in the batch")
        segments = self.segment_ids(batch)
        vectors = self.netE.group_vectors(real, segments) if self.runners.get("E") is None else None
        codes = self.netE.codes_of(vectors) if vectors is not None else self.encode_codes(real, segments)
        fake = self.synthesize(semantics, segments, codes)
        out = self.pix2pixhd_losses(semantics, fake, real)
        if vectors is not None and getattr(self.opt, "lambda_band", 0) > 0:
            out.g_losses["G_band"] = self.band_control_loss(semantics, segments, real, vectors) * self.opt.lambda_band
        return out

    def band_control_loss(self, semantics: torch.Tensor, segments: torch.Tensor, real: torch.Tensor,
                          vectors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each group may only change its own band: with one group's vectors (coarse or fine, drawn at random)
        replaced by uniform ones in [-1, 1], the other group's band of the output must still equal the real's."""
        group = ("coarse", "fine")[int(torch.randint(2, ()))]
        mixed = {**vectors, group: torch.rand_like(vectors[group]) * 2 - 1}
        fake = self.synthesize(semantics, segments, self.netE.codes_of(mixed))
        fake_bands = frequency_bands(fake, segments, self.netE.cell)
        real_bands = frequency_bands(real, segments, self.netE.cell)
        kept = "fine" if group == "coarse" else "coarse"
        return F.l1_loss(fake_bands[kept], real_bands[kept])

    def generator_parameters(self, epoch: int) -> Iterator[nn.Parameter]:
        return itertools.chain(self.netG.parameters(), self.netE.parameters())
