"""GH-Feat (Xu et al., CVPR 2021) for layouts: an encoder trained against a frozen, pretrained modulated generator
used as a learned loss; its outputs are the generator's per-instance, per-layer codes.

``--model ghfeat`` trains ``HierarchicalEncoder``; ``--model ghfeat_baseline`` trains ``PooledCodeEncoder``
(pix2pixHD's instance-average-pooled encoder + per-layer affine maps) under the same objective, for comparison.
``--ghfeat_generator PATH`` names a ``--model modulated`` checkpoint (file or run folder): its G is loaded frozen
(eval mode, no gradients) and its D initialises this run's D. Objective: pixel MSE, VGG19 perceptual (off only
with ``--no_vgg_loss`` or ``--lambda_perceptual 0``), non-saturating adversarial loss on reconstructions, and
R1 on real images for D.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from synth.core.errors import CheckpointError, OptionError
from synth.models.base_model import LayoutModel, NeededFile, StepOutput, SuppliedFile
from synth.models.losses import VGGLoss
from synth.models.losses.gan import _final_outputs
from synth.models.modulated_model import ModulatedModel, add_texture_option, check_modulated
from synth.models.networks import build_discriminator, build_generator, init_weights
from synth.models.networks.generator_modulated import Codes, ModulatedGenerator
from synth.models.networks.hierarchical_encoder import HierarchicalEncoder, PooledCodeEncoder
from synth.models.networks.segments import index_segments
from synth.models.networks.vgg import VGG19Features
from synth.models.pix2pixhd_model import semantic_channels
from synth.models.registry import MODELS

#: Flags copied from the generator's checkpoint (they fix G's and D's shapes); typing another value is an error.
GENERATOR_KEYS = ("netG", "ngf", "n_downsample_global", "n_blocks_global", "norm", "label_nc",
                  "contain_dontcare_label", "no_instance", "input_nc", "output_nc", "netD", "ndf", "n_layers_D",
                  "num_D", "no_ganFeat_loss", "feat_num", "fourier_texture")


def generator_state(supplied: SuppliedFile) -> dict:
    """The state of a handed-in ``--model modulated`` checkpoint; another model's checkpoint is an error naming
    the flag that chose it."""
    state = supplied.content
    if state["options"].get("model") != "modulated":
        raise CheckpointError(f"{supplied.path}: {supplied.flag} needs a --model modulated checkpoint, "
                              f"not '{state['options'].get('model')}'")
    return state


def adopt_generator_options(opt: argparse.Namespace, saved: dict, path: Path) -> None:
    """Take G's and D's architecture flags from the generator's checkpoint; a contradicting typed flag is an error."""
    for key in GENERATOR_KEYS:
        if key not in saved:
            continue
        if key in getattr(opt, "explicit", ()) and getattr(opt, key) != saved[key]:
            raise OptionError(f"{path}: the generator was trained with --{key} {saved[key]}, but --{key} "
                              f"{getattr(opt, key)} was given; drop the flag")
        setattr(opt, key, saved[key])


@MODELS.register("ghfeat")
class GHFeatModel(LayoutModel):
    """Frozen modulated G (``netG``), a trainable code encoder (``netE``) and a discriminator (``netD``)."""

    architecture_keys = ("ghfeat_encoder", "ghfeat_width", "ghfeat_code_space", "fourier_texture")
    encoder_kind = "hierarchical"

    @staticmethod
    def add_options(parser: argparse.ArgumentParser, is_train: bool) -> None:
        """GH-Feat's flags and its optimiser settings (Adam lr 1e-4, betas 0.9 / 0.99, step decay x0.8)."""
        g = parser.add_argument_group("GH-Feat")
        g.add_argument("--ghfeat_generator", type=str, default="",
                       help="checkpoint (file or run folder) of a --model modulated run: G frozen, D initialised")
        g.add_argument("--ghfeat_width", type=int, default=32, help="base width of the hierarchical encoder")
        g.add_argument("--ghfeat_code_space", choices=("free", "generator"), default="generator",
                       help="generator: each group's codes stay in the span G was trained on (a [-1, 1] vector "
                            "through its run's per-layer affines, frozen); free: any per-layer codes (the encoder "
                            "then paints colour through the fine layers, see docs/ghfeat.md)")
        if is_train:
            g.add_argument("--lambda_mse", type=float, default=1.0, help="weight of the pixel MSE")
            g.add_argument("--lambda_perceptual", type=float, default=5e-5,
                           help="weight of the VGG perceptual loss (0: off; needs VGG19 weights otherwise)")
            g.add_argument("--lambda_adv", type=float, default=0.08, help="weight of the adversarial loss")
            g.add_argument("--r1_gamma", type=float, default=10.0, help="R1 penalty weight gamma (gamma/2 * R1)")
            parser.set_defaults(lr=1e-4, beta1=0.9, beta2=0.99, lr_policy="step", lr_decay_epochs=2, lr_gamma=0.8)
        parser.set_defaults(netG="modulated", feat_num=8, n_downsample_E=3)
        add_texture_option(parser)

    @classmethod
    def needed_files(cls, opt: argparse.Namespace, for_training: bool) -> dict[str, NeededFile]:
        """The frozen generator's checkpoint (``--ghfeat_generator``) when training; required unless continuing."""
        source = getattr(opt, "ghfeat_generator", "")
        if for_training and not getattr(opt, "continue_train", False) and not source:
            raise OptionError(f"--model {opt.model} needs --ghfeat_generator (a --model modulated checkpoint)")
        return {"generator": NeededFile("checkpoint", source, "--ghfeat_generator")} if for_training and source else {}

    def __init__(self, opt: argparse.Namespace, for_training: bool, vgg: VGG19Features | None = None,
                 generator: SuppliedFile | None = None) -> None:
        super().__init__(opt, for_training)
        opt.ghfeat_encoder = self.encoder_kind
        state = None
        if generator is not None:
            state = generator_state(generator)
            adopt_generator_options(opt, state["options"], generator.path)
        check_modulated(opt)
        self.use_features = False
        self.netG: ModulatedGenerator = build_generator(opt, semantic_channels(opt))
        self.netE = self.build_encoder(opt)
        if state is not None:
            self.netG.load_state_dict(state["nets"]["G"])
            self.adopt_code_space(state["nets"]["E"])
        self.netG.requires_grad_(False)
        self.netG.eval()
        if not for_training:
            return
        self.netD = build_discriminator(opt, semantic_channels(opt) + opt.output_nc)
        if state is not None and "D" in state["nets"]:
            self.netD.load_state_dict(state["nets"]["D"])
        self.vgg_loss = None  # switched off only by a flag the run's options record, never for want of weights
        if not opt.no_vgg_loss and opt.lambda_perceptual > 0:
            self.vgg_loss = VGGLoss(vgg if vgg is not None else VGG19Features.from_weights(opt.vgg_weights))

    def build_encoder(self, opt: argparse.Namespace) -> nn.Module:
        """The hierarchical (ResNet + FPN) encoder; in the generator's code space its affines are frozen."""
        in_span = getattr(opt, "ghfeat_code_space", "free") == "generator"
        encoder = HierarchicalEncoder(opt.output_nc, self.netG.num_codes, self.netG.layer_groups, opt.ghfeat_width,
                                      opt.feat_num if in_span else 0, self.netG.texture_banks, self.netG.size_multiple)
        if encoder.affines is not None:
            encoder.affines.requires_grad_(False)
        return encoder

    def adopt_code_space(self, generator_encoder: dict) -> None:
        """Copy the modulated run's per-layer affines (its code encoder's) into E's frozen ones, if E has them."""
        if not isinstance(self.netE, HierarchicalEncoder) or self.netE.affines is None:
            return
        prefix = "affines."
        self.netE.affines.load_state_dict({k[len(prefix):]: v for k, v in generator_encoder.items()
                                           if k.startswith(prefix)})

    def train(self, mode: bool = True) -> GHFeatModel:
        """G stays in eval mode whatever mode the rest is put in."""
        super().train(mode)
        self.netG.eval()
        return self

    def networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {"G": self.netG, "E": self.netE}
        if self.for_training:
            nets["D"] = self.netD
        return nets

    encode_input = ModulatedModel.encode_input
    segment_ids = ModulatedModel.segment_ids
    encode_codes = ModulatedModel.encode_codes
    synthesize = ModulatedModel.synthesize
    forward = ModulatedModel.forward

    def reconstruct(self, batch: dict) -> tuple[torch.Tensor, Codes]:
        """(reconstruction, codes) of the batch's real images given their layouts."""
        semantics, real = self.encode_input(batch)
        if real is None:
            raise ValueError("reconstruction needs the real images")
        return self.reconstruct_encoded(batch, semantics, real)

    def reconstruct_encoded(self, batch: dict, semantics: torch.Tensor,
                            real: torch.Tensor) -> tuple[torch.Tensor, Codes]:
        """``reconstruct`` from the batch's already encoded ``semantics`` and ``real`` (a step encodes once)."""
        segments = index_segments(self.segment_ids(batch))  # numbered once for E and G
        codes = self.encode_codes(real, segments)
        return self.synthesize(semantics, segments, codes), codes

    def compute_losses(self, batch: dict) -> StepOutput:
        """Encoder terms (MSE, perceptual, NS adversarial) and D terms (NS + R1 on the real pair)."""
        opt = self.opt
        semantics, real = self.encode_input(batch)
        if real is None:
            raise ValueError("training needs real images in the batch")
        fake, _ = self.reconstruct_encoded(batch, semantics, real)
        need_r1 = torch.is_grad_enabled() and opt.r1_gamma > 0
        real_in = real.detach().requires_grad_(True) if need_r1 else real
        # two D passes, so the encoder's adversarial term back-propagates through the fake pair's only
        fake_logits = _final_outputs(self.run("D", torch.cat([semantics.to(fake.dtype), fake], 1)))
        real_logits = _final_outputs(self.run("D", torch.cat([semantics, real_in], 1)))
        g_losses = {
            "E_mse": F.mse_loss(fake, real) * opt.lambda_mse,
            "E_adv": torch.stack([F.softplus(-x).mean() for x in fake_logits]).sum() * opt.lambda_adv,
        }
        if self.vgg_loss is not None:
            g_losses["E_perceptual"] = self.vgg_loss(fake, real) * opt.lambda_perceptual
        d_losses = {
            "D_fake": torch.stack([F.softplus(x).mean() for x in fake_logits]).sum(),
            "D_real": torch.stack([F.softplus(-x).mean() for x in real_logits]).sum(),
        }
        if need_r1:
            (grad,) = torch.autograd.grad(sum(x.sum() for x in real_logits), real_in, create_graph=True)
            d_losses["D_R1"] = grad.pow(2).flatten(1).sum(1).mean() * (opt.r1_gamma / 2)
        return StepOutput(g_losses, d_losses, fake.detach())

    def generator_parameters(self, epoch: int) -> Iterator[nn.Parameter]:
        """Only the encoder trains (less its frozen affines); G is frozen."""
        return (p for p in self.netE.parameters() if p.requires_grad)

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return self.netD.parameters()


@MODELS.register("ghfeat_baseline")
class GHFeatBaselineModel(GHFeatModel):
    """The same objective with pix2pixHD's instance-average-pooled encoder + per-layer affine maps."""

    encoder_kind = "pooled"

    def build_encoder(self, opt: argparse.Namespace) -> nn.Module:
        encoder = PooledCodeEncoder(opt.output_nc, self.netG.num_codes, opt.feat_num, opt.nef, opt.n_downsample_E,
                                    opt.norm)
        init_weights(encoder.net)
        return encoder
