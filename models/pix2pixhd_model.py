"""pix2pixHD (Wang et al., CVPR 2018): label one-hot + instance boundaries -> coarse-to-fine generator, judged by a
multi-scale PatchGAN with feature matching and a VGG19 perceptual loss."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator

import torch
from torch import nn

from synth.data.preprocess import effective_label_nc, instance_boundaries, one_hot
from synth.models.base_model import LayoutModel, StepOutput
from synth.models.image_pool import ImagePool
from synth.models.losses import GANLoss, VGGLoss, feature_matching_loss
from synth.models.networks import build_discriminator, build_encoder, build_generator
from synth.models.networks.vgg import VGG19Features
from synth.models.registry import MODELS

Features = list[list[torch.Tensor]]


def semantic_channels(opt: argparse.Namespace) -> int:
    """Channels of the layout input: one-hot labels (or a raw image when label_nc is 0) + instance boundaries."""
    labels = effective_label_nc(opt.label_nc, opt.contain_dontcare_label) if opt.label_nc else opt.input_nc
    return labels + (0 if opt.no_instance else 1)


def uses_features(opt: argparse.Namespace) -> bool:
    """Whether G also takes per-instance (or per-label-segment) feature channels (pix2pixHD §3.4)."""
    return bool(getattr(opt, "instance_feat", False) or getattr(opt, "label_feat", False))


def encodes_features(opt: argparse.Namespace) -> bool:
    """Whether the model has an encoder E: features are used and not loaded precomputed (--load_features)."""
    return uses_features(opt) and not getattr(opt, "load_features", False)


def generator_input_channels(opt: argparse.Namespace) -> int:
    """Layout channels, plus ``feat_num`` feature channels when features are used."""
    return semantic_channels(opt) + (opt.feat_num if uses_features(opt) else 0)


def generator_size_multiple(opt: argparse.Namespace) -> int:
    """The stride inputs must divide by: G's, and E's when features are encoded (built on the meta device)."""
    with torch.device("meta"):
        multiple = int(build_generator(opt, generator_input_channels(opt)).size_multiple)
        if encodes_features(opt):
            multiple = max(multiple, int(build_encoder(opt, opt.output_nc).size_multiple))
    return multiple


@MODELS.register("pix2pixHD")
class Pix2PixHDModel(LayoutModel):
    """pix2pixHD's networks and objective: LSGAN (or hinge / vanilla) + feature matching + VGG."""

    def __init__(self, opt: argparse.Namespace, for_training: bool, vgg: VGG19Features | None = None) -> None:
        super().__init__(opt, for_training)
        input_nc = semantic_channels(opt)
        self.use_features = uses_features(opt)
        self.has_encoder = encodes_features(opt)  # with --load_features, G reads precomputed maps instead
        self.netG = build_generator(opt, generator_input_channels(opt))  # initialised as pix2pixHD does
        if self.has_encoder:
            self.netE = build_encoder(opt, opt.output_nc)
        if not for_training:
            return
        self.netD = build_discriminator(opt, input_nc + opt.output_nc)  # features are not shown to D
        self.gan_loss = GANLoss(opt.gan_mode)
        if not opt.no_vgg_loss:
            self.vgg_loss = VGGLoss(vgg if vgg is not None else VGG19Features.from_weights(opt.vgg_weights))
        pool_size = getattr(opt, "pool_size", 0)
        self.fake_pool = ImagePool(pool_size, opt.seed) if pool_size > 0 else None

    def stateful_parts(self) -> dict[str, nn.Module]:
        """The image pool, when there is one: its images and draws resume exactly."""
        return {"fake_pool": self.fake_pool} if getattr(self, "fake_pool", None) is not None else {}

    def networks(self) -> dict[str, nn.Module]:
        nets = {"G": self.netG}
        if self.has_encoder:
            nets["E"] = self.netE
        if self.for_training:
            nets["D"] = self.netD
        return nets

    def encode_input(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One-hot label map (+ instance boundary map) on the model's device; the real image when present."""
        device = next(self.netG.parameters()).device
        label = batch["label"].to(device, non_blocking=True)
        if self.opt.label_nc:
            nc = effective_label_nc(self.opt.label_nc, self.opt.contain_dontcare_label)
            semantics = one_hot(label, nc)
        else:
            semantics = label.float()
        if not self.opt.no_instance:
            inst = batch["inst"].to(device, non_blocking=True)
            semantics = torch.cat([semantics, instance_boundaries(inst)], dim=1)
        real = batch.get("image")
        return semantics, (real.to(device, non_blocking=True) if real is not None else None)

    def forward(self, generator_input: torch.Tensor) -> torch.Tensor:
        """G alone, on the full generator input (layout channels, then feature channels when used)."""
        return self.netG(generator_input)

    def segment_ids(self, batch: dict) -> torch.Tensor:
        """What features are pooled over: instance ids (--instance_feat) or label ids (--label_feat)."""
        device = next(self.netG.parameters()).device
        key = "inst" if self.opt.instance_feat else "label"
        return batch[key].to(device, non_blocking=True)

    def encode_features(self, real: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        """E's output on the real image, averaged inside each segment."""
        if not self.has_encoder:
            raise ValueError("this model was trained with --load_features and has no encoder E")
        return self.run("E", real, segments)

    def training_features(self, batch: dict, real: torch.Tensor) -> torch.Tensor | None:
        """G's feature channels in training: the precomputed map (--load_features) or E on the real image."""
        if not self.use_features:
            return None
        if not self.has_encoder:
            device = next(self.netG.parameters()).device
            return batch["feat"].to(device, non_blocking=True)
        return self.encode_features(real, self.segment_ids(batch))

    def generator_input(self, semantics: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Layout channels, with the feature map appended when the model uses features."""
        if not self.use_features:
            return semantics
        if features is None:
            raise ValueError("this model takes instance features: pass encoded or cluster-sampled features")
        return torch.cat([semantics, features.to(semantics.dtype)], dim=1)

    def discriminate(
        self, semantics: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[Features, Features]:
        """D's outputs for the fake and the real pair, each computed once, in two passes: G's terms back-propagate
        through the fake pass only (one pass on the stacked pairs made backward carry zero gradients through the
        real half as well, about 3 % of a 512x256 step)."""
        # Under autocast G's output is already in the autocast dtype: D's input is built in it, so D's first
        # convolution casts nothing and its backward casts no [B, C, H, W] gradient back to fp32. On the CPU D runs
        # channels-last: the label channels are moved once, with the cast, not in both pairs (26 ms each at 512x256).
        layout = torch.channels_last if fake.device.type == "cpu" else torch.preserve_format
        semantics = semantics.to(fake.dtype, memory_format=layout)
        fake_pair = torch.cat([semantics, fake.to(memory_format=layout)], dim=1)
        real_pair = torch.cat([semantics, real.to(fake.dtype, memory_format=layout)], dim=1)
        return self.run("D", fake_pair), self.run("D", real_pair)

    def compute_losses(self, batch: dict) -> StepOutput:
        """pix2pixHD's loss terms. The trainer back-propagates the G terms into G only and the D terms into D only,
        so the fake pair needs no separate detached D pass."""
        semantics, real = self.encode_input(batch)
        if real is None:
            raise ValueError("training needs real images in the batch")
        fake = self.run("G", self.generator_input(semantics, self.training_features(batch, real)))
        return self.pix2pixhd_losses(semantics, fake, real)

    def pix2pixhd_losses(self, semantics: torch.Tensor, fake: torch.Tensor, real: torch.Tensor,
                         predictions: tuple[Features, Features] | None = None) -> StepOutput:
        """GAN + feature matching + VGG terms for G, and D's real/fake terms, from D's outputs on both pairs (or
        from the ``(fake, real)`` D outputs a caller already computed for other terms too)."""
        pred_fake, pred_real = predictions or self.discriminate(semantics, fake, real)
        g_losses = {"G_GAN": self.gan_loss(pred_fake, True, for_discriminator=False)}
        if not self.opt.no_ganFeat_loss:
            g_losses["G_GAN_Feat"] = feature_matching_loss(pred_fake, pred_real, self.opt.lambda_feat)
        if not self.opt.no_vgg_loss:
            g_losses["G_VGG"] = self.vgg_loss(fake, real) * self.opt.lambda_feat
        if getattr(self, "fake_pool", None) is not None:  # D's fake term on pooled earlier fakes (pix2pixHD)
            pooled = self.fake_pool.query(torch.cat([semantics, fake], dim=1))
            pred_fake = self.run("D", pooled)
        d_losses = {
            "D_fake": 0.5 * self.gan_loss(pred_fake, False, for_discriminator=True),
            "D_real": 0.5 * self.gan_loss(pred_real, True, for_discriminator=True),
        }
        return StepOutput(g_losses, d_losses, fake.detach())

    def generator_parameters(self, epoch: int) -> Iterator[nn.Parameter]:
        """All of G (and E, trained jointly), or, during the first ``--niter_fix_global`` epochs, only the
        outermost local enhancer (and E), as pix2pixHD trains it."""
        if self.opt.netG == "local" and epoch <= getattr(self.opt, "niter_fix_global", 0):
            g_params = self.netG.outermost_parameters()
        else:
            g_params = self.netG.parameters()
        return itertools.chain(g_params, self.netE.parameters() if self.has_encoder else ())

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return self.netD.parameters()
