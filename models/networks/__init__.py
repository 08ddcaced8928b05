"""Generators, discriminators and the VGG feature extractor; importing this package registers them."""

from __future__ import annotations

from typing import Any

from torch import nn

from synth.models.networks.blocks import ResnetBlock
from synth.models.networks.discriminator import MultiscaleDiscriminator, NLayerDiscriminator
from synth.models.networks.encoder import InstanceEncoder
from synth.models.networks.generator_global import GlobalGenerator
from synth.models.networks.generator_local import EnhancerBranch, LocalEnhancer
from synth.models.networks.generator_modulated import ModulatedGenerator
from synth.models.networks.norm import norm_layer
from synth.models.networks.vgg import VGG19Features, load_vgg19_weights
from synth.models.registry import DISCRIMINATORS, ENCODERS, GENERATORS

__all__ = [
    "EnhancerBranch",
    "GlobalGenerator",
    "InstanceEncoder",
    "LocalEnhancer",
    "ModulatedGenerator",
    "MultiscaleDiscriminator",
    "NLayerDiscriminator",
    "ResnetBlock",
    "VGG19Features",
    "build_discriminator",
    "build_encoder",
    "build_generator",
    "init_weights",
    "load_vgg19_weights",
    "norm_layer",
]


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """pix2pixHD's init: conv (and transposed conv) weights ~ N(0, gain); batch-norm weight ~ N(1, gain), bias 0."""

    def init_one(module: nn.Module) -> None:
        if isinstance(module, nn.modules.conv._ConvNd):
            nn.init.normal_(module.weight, 0.0, gain)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)

    net.apply(init_one)
    return net


def build_generator(opt: Any, input_nc: int) -> nn.Module:
    """The --netG generator for ``input_nc`` input channels, initialised like pix2pixHD."""
    return init_weights(GENERATORS.get(opt.netG).from_options(opt, input_nc))


def build_discriminator(opt: Any, input_nc: int) -> nn.Module:
    """The --netD discriminator for ``input_nc`` input channels, initialised like pix2pixHD."""
    return init_weights(DISCRIMINATORS.get(opt.netD).from_options(opt, input_nc))


def build_encoder(opt: Any, input_nc: int) -> nn.Module:
    """The --netE feature encoder for ``input_nc`` image channels, initialised like pix2pixHD."""
    return init_weights(ENCODERS.get(opt.netE).from_options(opt, input_nc))
