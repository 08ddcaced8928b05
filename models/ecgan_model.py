"""ECGAN (Tang et al., "Edge Guided GANs with Contrastive Learning for Semantic Image Synthesis", ICLR 2023) on
pix2pixHD's generator: edge generation with attention-guided edge transfer, the semantic-preserving module, the
label generator's similarity loss and the pixel-wise contrastive loss; each part can be switched off (docs/ecgan.md).
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator

import torch
from torch import nn

from synth.core.errors import OptionError
from synth.data.preprocess import effective_label_nc
from synth.models.base_model import LayoutModel, StepOutput
from synth.models.losses import GANLoss, VGGLoss, feature_matching_loss
from synth.models.losses.contrastive import PixelContrastLoss, sample_pixels
from synth.models.losses.similarity import similarity_loss
from synth.models.networks import build_discriminator, build_encoder, build_generator, init_weights
from synth.models.networks.ecgan import ECGANGenerator, LabelGenerator, ProjectionHead, strip_image_head
from synth.models.networks.vgg import VGG19Features
from synth.models.pix2pixhd_model import Pix2PixHDModel, generator_input_channels, semantic_channels, uses_features
from synth.models.registry import MODELS

Features = list[list[torch.Tensor]]


def add_ecgan_options(parser: argparse.ArgumentParser, is_train: bool) -> None:
    """ECGAN's flags, and the ECGAN / SPADE recipe as defaults (a config file or the command line wins)."""
    g = parser.add_argument_group("ecgan")
    g.add_argument("--no_edge", action="store_true", help="no edge generator G_e (and no edge transfer or edge loss)")
    g.add_argument("--no_edge_attention", action="store_true", help="keep G_e but do not gate the image with it")
    g.add_argument("--no_semantic_preserving", action="store_true", help="no semantic-preserving module G_s")
    g.add_argument("--sp_class_presence", action="store_true",
                   help="G_s also multiplies its class weights by the image's class-presence vector")
    g.add_argument("--edge_steps", type=int, default=3, help="channel-halving steps of G_e and G_i")
    g.add_argument("--no_similarity_loss", action="store_true", help="no label generator G_l / similarity loss")
    g.add_argument("--no_contrastive_loss", action="store_true", help="no pixel-wise contrastive loss")
    g.add_argument("--ngf_label", type=int, default=32, help="width of the label generator G_l")
    g.add_argument("--n_blocks_label", type=int, default=2, help="residual blocks of G_l")
    g.add_argument("--contrast_dim", type=int, default=256, help="projection dimension of pixel embeddings")
    parser.set_defaults(num_D=2, n_layers_D=4)
    if not is_train:
        return
    g.add_argument("--lambda_final", type=float, default=2.0, help="GAN weight of the final image I''")
    g.add_argument("--lambda_sim", type=float, default=1.0, help="weight of the similarity loss")
    g.add_argument("--sim_pixels", type=int, default=1024, help="pixels M per image of the similarity loss")
    g.add_argument("--lambda_contrast", type=float, default=0.1, help="weight of the contrastive loss")
    g.add_argument("--contrast_temperature", type=float, default=0.1, help="temperature tau of the contrastive loss")
    g.add_argument("--contrast_anchors", type=int, default=1024, help="anchor pixels sampled per batch")
    g.add_argument("--contrast_memory", type=int, default=4096, help="memory bank of past embeddings (0: none)")
    parser.set_defaults(need_edges=True, gan_mode="hinge", lr=1e-4, lr_D=4e-4, beta1=0.0, beta2=0.9)


def label_classes(opt: argparse.Namespace) -> int:
    """N: the one-hot label channels (don't-care included when present)."""
    if not opt.label_nc:
        raise OptionError("ECGAN needs label maps (--label_nc > 0) for its class-wise modules and losses")
    return effective_label_nc(opt.label_nc, opt.contain_dontcare_label)


def build_ecgan_generator(opt: argparse.Namespace) -> ECGANGenerator:
    """The --netG trunk (headless) wrapped with G_e, G_i and G_s as the flags ask; initialised like pix2pixHD."""
    trunk = strip_image_head(build_generator(opt, generator_input_channels(opt)))
    net = ECGANGenerator(
        trunk, opt.ngf, opt.output_nc, semantic_channels(opt), label_classes(opt),
        steps=opt.edge_steps, norm=opt.norm, edge=not opt.no_edge, attention=not opt.no_edge_attention,
        semantic_preserving=not opt.no_semantic_preserving, class_presence=opt.sp_class_presence,
    )
    return init_weights(net)


@MODELS.register("ecgan")
class ECGANModel(Pix2PixHDModel):
    """ECGAN's networks (G = trunk + G_e + G_i + G_s, L = G_l, P = projection head, D) and objective."""

    architecture_keys = (
        "no_edge", "no_edge_attention", "no_semantic_preserving", "sp_class_presence", "edge_steps",
        "no_similarity_loss", "no_contrastive_loss", "ngf_label", "n_blocks_label", "contrast_dim",
    )

    @staticmethod
    def add_options(parser: argparse.ArgumentParser, is_train: bool) -> None:
        add_ecgan_options(parser, is_train)

    def __init__(self, opt: argparse.Namespace, for_training: bool, vgg: VGG19Features | None = None) -> None:
        LayoutModel.__init__(self, opt, for_training)
        self.n_classes = label_classes(opt)
        self.use_features = uses_features(opt)
        if getattr(opt, "load_features", False):
            raise OptionError("--model ecgan does not take --load_features; its encoder trains with G")
        self.has_encoder = self.use_features
        self.netG = build_ecgan_generator(opt)
        if self.use_features:
            self.netE = build_encoder(opt, opt.output_nc)
        if not for_training:
            return
        self.netD = build_discriminator(opt, semantic_channels(opt) + opt.output_nc)  # judges images and edges
        if not opt.no_similarity_loss:
            self.netL = init_weights(LabelGenerator(opt.output_nc, self.n_classes, opt.ngf_label, opt.n_blocks_label,
                                                    opt.norm))
        if not opt.no_contrastive_loss:
            self.netP = ProjectionHead(opt.ngf, opt.contrast_dim)
            self.contrast_loss = PixelContrastLoss(
                opt.contrast_dim, opt.contrast_temperature, opt.contrast_anchors, opt.contrast_memory
            )
        self.gan_loss = GANLoss(opt.gan_mode)
        if not opt.no_vgg_loss:
            self.vgg_loss = VGGLoss(vgg if vgg is not None else VGG19Features.from_weights(opt.vgg_weights))

    def networks(self) -> dict[str, nn.Module]:
        nets = super().networks()
        if self.for_training:
            nets.update({name: getattr(self, f"net{name}") for name in ("L", "P") if hasattr(self, f"net{name}")})
        return nets

    def stateful_parts(self) -> dict[str, nn.Module]:
        """The contrastive loss's memory bank of past embeddings."""
        return {"contrast_memory": self.contrast_loss} if hasattr(self, "contrast_loss") else {}

    # ----- inference --------------------------------------------------------------------------------------
    def forward(self, generator_input: torch.Tensor) -> torch.Tensor:
        """The final image I''."""
        return self.netG(generator_input)["image"]

    def inference_visuals(self, generator_input: torch.Tensor) -> dict[str, torch.Tensor]:
        """I'' as ``synthesized_image`` plus the edge map I'_e and the intermediate image I' when they exist."""
        out = self.netG(generator_input)
        visuals = {"synthesized_image": out["image"]}
        if "edge" in out:
            visuals["edge_map"] = out["edge"]
        if self.netG.has_semantic_preserving:
            visuals["intermediate_image"] = out["intermediate"]
        return visuals

    # ----- training ---------------------------------------------------------------------------------------
    def discriminate_all(self, semantics: torch.Tensor, images: list[torch.Tensor]) -> list[Features]:
        """D's outputs for each (semantics, image) pair, one pass per pair, so G's terms back-propagate through
        the fakes' passes only (not through the real pairs, as one stacked pass would). Each pair is built in its
        image's dtype (under autocast a fake is already in the autocast dtype, which D's convolutions compute in)."""
        return [self.run("D", torch.cat([semantics.to(image.dtype), image], dim=1)) for image in images]

    def _edge_image(self, edge: torch.Tensor) -> torch.Tensor:
        """A 1-channel edge map repeated to the image channels, so the same D and VGG judge it."""
        return edge.expand(-1, self.opt.output_nc, -1, -1)

    def _image_terms(
        self, suffix: str, fake: torch.Tensor, real: torch.Tensor, pred_fake: Features, pred_real: Features,
        weight: float, g_losses: dict[str, torch.Tensor],
    ) -> None:
        """cGAN (times ``weight``), feature matching and VGG terms of one generated output."""
        g_losses[f"G_GAN{suffix}"] = weight * self.gan_loss(pred_fake, True, for_discriminator=False)
        if not self.opt.no_ganFeat_loss:
            g_losses[f"G_GAN_Feat{suffix}"] = feature_matching_loss(pred_fake, pred_real, self.opt.lambda_feat)
        if not self.opt.no_vgg_loss:
            g_losses[f"G_VGG{suffix}"] = self.vgg_loss(fake, real) * self.opt.lambda_feat

    def compute_losses(self, batch: dict) -> StepOutput:
        """cGAN + feature matching + VGG on I'' (GAN weight --lambda_final), I' and I'_e; similarity; contrast."""
        opt = self.opt
        semantics, real = self.encode_input(batch)
        if real is None:
            raise ValueError("training needs real images in the batch")
        features = self.encode_features(real, self.segment_ids(batch)) if self.use_features else None
        out = self.run("G", self.generator_input(semantics, features))
        final = out["image"]
        # (suffix, generated, its real counterpart, GAN weight): I'' with --lambda_final, then I' and I'_e
        entries = [("", final, real, opt.lambda_final)]
        if self.netG.has_semantic_preserving:
            entries.append(("_inter", out["intermediate"], real, 1.0))
        reals = [real]
        if "edge" in out:
            if "edge" not in batch:
                raise ValueError("ECGAN's edge loss needs batch['edge'] (the dataset adds it with --need_edges)")
            reals.append(self._edge_image(batch["edge"].to(real.device, non_blocking=True)))
            entries.append(("_edge", self._edge_image(out["edge"]), reals[-1], 1.0))
        preds = self.discriminate_all(semantics, [entry[1] for entry in entries] + reals)
        pred_real_image, pred_real_edge = preds[len(entries)], preds[-1]
        g_losses: dict[str, torch.Tensor] = {}
        d_losses: dict[str, torch.Tensor] = {}
        for (name, fake, target, weight), pred_fake in zip(entries, preds[: len(entries)], strict=True):
            pred_real = pred_real_edge if name == "_edge" else pred_real_image
            self._image_terms(name, fake, target, pred_fake, pred_real, weight, g_losses)
            d_losses[f"D_fake{name}"] = 0.5 * weight * self.gan_loss(pred_fake, False, for_discriminator=True)
        # each real pair weighs as much as the fakes it is contrasted with (3 = 2 for I'' + 1 for I')
        image_weight = sum(entry[3] for entry in entries if entry[0] != "_edge")
        d_losses["D_real"] = 0.5 * image_weight * self.gan_loss(pred_real_image, True, for_discriminator=True)
        if "edge" in out:
            d_losses["D_real_edge"] = 0.5 * self.gan_loss(pred_real_edge, True, for_discriminator=True)
        if hasattr(self, "netL"):
            probs = torch.softmax(self.run("L", final).float(), dim=1)
            g_losses["G_sim"] = opt.lambda_sim * similarity_loss(probs, semantics[:, : self.n_classes], opt.sim_pixels)
        if hasattr(self, "netP"):
            g_losses["G_contrast"] = opt.lambda_contrast * self.contrastive(out["features"], batch)
        visuals = {"edge_map": out["edge"].detach()} if "edge" in out else {}
        if self.netG.has_semantic_preserving:
            visuals["intermediate_image"] = out["intermediate"].detach()
        return StepOutput(g_losses, d_losses, final.detach(), visuals)

    def contrastive(self, features: torch.Tensor, batch: dict) -> torch.Tensor:
        """The pixel-wise contrastive loss on embeddings of up to --contrast_anchors pixels of the whole batch."""
        labels = batch["label"].to(features.device, non_blocking=True)
        ignore = self.opt.label_nc if self.opt.contain_dontcare_label else -1
        index, filled = sample_pixels(labels, ignore, self.opt.contrast_anchors, num_classes=self.opt.label_nc + 1)
        flat = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
        embeddings = self.run("P", flat[index])
        anchor_labels = torch.where(filled, labels.reshape(-1)[index], -1)  # -1: an empty slot, no anchor
        return self.contrast_loss(embeddings.float(), anchor_labels)

    def generator_parameters(self, epoch: int) -> Iterator[nn.Parameter]:
        """G (only its outermost local enhancer and ECGAN heads during --niter_fix_global), E, G_l and the
        projection head."""
        if self.opt.netG == "local" and epoch <= getattr(self.opt, "niter_fix_global", 0):
            g_params = self.netG.outermost_parameters()
        else:
            g_params = self.netG.parameters()
        extra = [net.parameters() for name, net in self.networks().items() if name in ("E", "L", "P")]
        return itertools.chain(g_params, *extra)
