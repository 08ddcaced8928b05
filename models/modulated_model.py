"""A pix2pixHD whose generator is style-modulated per instance (``--model modulated``, ``--netG modulated``).

While this model trains, each instance's codes come from the real image through ``BandCodeEncoder`` (network
``E``): coarse codes from the instance's mean colour (chromaticity and a log-brightness coordinate), mid and fine
codes from its luminance contrast below and above G's coarsest cell. G and E are judged by pix2pixHD's losses, a
pixel L1 to the image the codes came from (``--lambda_l1``) and the band-control term (``--lambda_band``): a
swapped coarse vector must bring its donor's mean colour, a random fine one must leave the mean colours alone, so
each layer group owns its band. The trained G is what GH-Feat (``models/ghfeat_model.py``) inverts, frozen.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from synth.core.errors import OptionError
from synth.models.base_model import LayoutModel, StepOutput
from synth.models.losses import GANLoss, VGGLoss
from synth.models.networks import build_discriminator, build_generator, init_weights
from synth.models.networks.generator_modulated import Codes, ModulatedGenerator
from synth.models.networks.hierarchical_encoder import BandCodeEncoder
from synth.models.networks.segments import SegmentIndex, frequency_bands, index_segments
from synth.models.networks.vgg import VGG19Features
from synth.models.pix2pixhd_model import Pix2PixHDModel, semantic_channels
from synth.models.registry import MODELS


def check_modulated(opt: argparse.Namespace) -> None:
    """The models built on the modulated generator need --netG modulated and no --instance_feat/--label_feat."""
    if opt.netG != "modulated":
        raise OptionError(f"--model {opt.model} needs --netG modulated, not '{opt.netG}'")
    if getattr(opt, "instance_feat", False) or getattr(opt, "label_feat", False):
        raise OptionError(f"--model {opt.model} carries instance codes itself: drop --instance_feat / --label_feat")


def add_texture_option(parser: argparse.ArgumentParser) -> None:
    """``--fourier_texture``: the generator's fine group gets a Fourier texture layer (``fourier_texture``)."""
    parser.add_argument("--fourier_texture", action="store_true",
                        help="give the modulated generator a last, fine layer that multiplies each instance's "
                             "brightness by a sum of fixed Fourier features (plane waves above its coarsest cell); "
                             "its codes are the fine band's local Fourier coefficients, so G can draw a texture in "
                             "phase with the image")


@MODELS.register("modulated")
class ModulatedModel(Pix2PixHDModel):
    """pix2pixHD's objective on the modulated generator, codes from ``BandCodeEncoder`` (network ``E``)."""

    architecture_keys = ("fourier_texture",)

    @staticmethod
    def add_options(parser: argparse.ArgumentParser, is_train: bool) -> None:
        """Defaults: the modulated generator, an 8-channel instance code, an encoder as deep as the demo's G."""
        parser.set_defaults(netG="modulated", feat_num=8, n_downsample_E=3)
        add_texture_option(parser)
        if is_train:
            parser.add_argument("--lambda_l1", type=float, default=10.0,
                                help="weight of the L1 distance between the reconstruction and the real image: G "
                                     "re-renders the image its codes came from, so colour and brightness are held "
                                     "to the pixel, not only through D's features (0: off)")
            parser.add_argument("--lambda_band", type=float, default=10.0,
                                help="weight of the band-control term: a swapped coarse vector must give the donor's "
                                     "mean colour and keep the fine band, a random fine vector must keep the mean "
                                     "colours (0: off)")

    def __init__(self, opt: argparse.Namespace, for_training: bool, vgg: VGG19Features | None = None) -> None:
        LayoutModel.__init__(self, opt, for_training)
        check_modulated(opt)
        self.use_features = False  # codes are not input channels; see encode_codes / synthesize
        self.netG: ModulatedGenerator = build_generator(opt, semantic_channels(opt))
        self.netE = BandCodeEncoder(opt.output_nc, self.netG.num_codes, self.netG.layer_groups,
                                    self.netG.size_multiple, opt.feat_num, opt.nef, opt.n_downsample_E, opt.norm,
                                    self.netG.texture_banks)
        for net in self.netE.texture.values():
            init_weights(net)
        if not for_training:
            return
        self.netD = build_discriminator(opt, semantic_channels(opt) + opt.output_nc)
        self.gan_loss = GANLoss(opt.gan_mode)
        if not opt.no_vgg_loss:
            self.vgg_loss = VGGLoss(vgg if vgg is not None else VGG19Features.from_weights(opt.vgg_weights))

    def networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {"G": self.netG, "E": self.netE}
        if self.for_training:
            nets["D"] = self.netD
        return nets

    def use_runners(self, runners: dict[str, nn.Module]) -> None:
        """Under DDP the band-control term cannot apply (it calls E's methods, outside E's wrapper, so their
        gradients would not be synchronised): that stops the run unless --lambda_band 0 switches the term off."""
        if "E" in runners and getattr(self.opt, "lambda_band", 0) > 0:
            raise OptionError(f"--model {self.opt.model} under torchrun cannot apply the band-control term (it "
                              f"calls E outside DDP); pass --lambda_band 0 to train without it")
        super().use_runners(runners)

    def segment_ids(self, batch: dict) -> torch.Tensor:
        """Instance ids (label ids with --no_instance): what codes are pooled over and painted through."""
        device = next(self.netG.parameters()).device
        return batch["label" if self.opt.no_instance else "inst"].to(device, non_blocking=True)

    def encode_codes(self, real: torch.Tensor, segments: torch.Tensor | SegmentIndex) -> Codes:
        """Per-instance, per-layer codes of a real image."""
        return self.run("E", real, segments)

    def synthesize(self, semantics: torch.Tensor, segments: torch.Tensor | SegmentIndex, codes: Codes | None
                   ) -> torch.Tensor:
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
        segments = index_segments(self.segment_ids(batch))  # numbered once per step, used by E, G and the bands
        if self.runners.get("E") is not None:  # under DDP (--lambda_band 0, see use_runners): E's own forward
            return self.reconstruction_losses(semantics, self.synthesize(semantics, segments, self.encode_codes(
                real, segments)), real)
        real_bands = frequency_bands(real, segments, self.netE.cell)
        vectors = self.netE.group_vectors(real, segments, real_bands)
        fake = self.synthesize(semantics, segments, self.netE.codes_of(vectors))
        out = self.reconstruction_losses(semantics, fake, real)
        if getattr(self.opt, "lambda_band", 0) > 0:
            out.g_losses["G_band"] = self.band_control_loss(semantics, segments, real_bands, vectors) * \
                self.opt.lambda_band
        return out

    def reconstruction_losses(self, semantics: torch.Tensor, fake: torch.Tensor, real: torch.Tensor,
                              predictions: tuple | None = None) -> StepOutput:
        """pix2pixHD's terms plus the pixel L1 to the image the codes were taken from (``--lambda_l1``)."""
        out = self.pix2pixhd_losses(semantics, fake, real, predictions)
        if getattr(self.opt, "lambda_l1", 0) > 0:
            out.g_losses["G_L1"] = F.l1_loss(fake, real) * self.opt.lambda_l1
        return out

    def band_control_loss(self, semantics: torch.Tensor, segments: torch.Tensor | SegmentIndex,
                          real_bands: dict[str, torch.Tensor], vectors: dict[str, torch.Tensor],
                          group: str | None = None) -> torch.Tensor:
        """Each group owns its band and only its band. One group is drawn at random. Coarse: every instance takes
        another instance's coarse vector, so its mean colour must become that donor's while its fine band stays
        the real one's (without the swap a small training set lets G read colours off the layout, ignoring the
        codes). Fine: uniform random vectors in [-1, 1] must leave the mean colours as they are."""
        group = group or ("coarse", "fine")[int(torch.randint(2, ()))]
        if group == "coarse":
            donors = torch.randperm(vectors["coarse"].shape[0], device=vectors["coarse"].device)
            mixed = {**vectors, "coarse": vectors["coarse"][donors]}
            targets = {"coarse": real_bands["coarse"][donors], "fine": real_bands["fine"]}
        else:
            mixed = {**vectors, "fine": torch.rand_like(vectors["fine"]) * 2 - 1}
            targets = {"coarse": real_bands["coarse"]}
        fake = self.synthesize(semantics, segments, self.netE.codes_of(mixed))
        fake_bands = frequency_bands(fake, segments, self.netE.cell)
        return sum(F.l1_loss(fake_bands[band], target) for band, target in targets.items())

    def generator_parameters(self, epoch: int) -> Iterator[nn.Parameter]:
        return itertools.chain(self.netG.parameters(), self.netE.parameters())
