"""Losses: adversarial, feature matching, VGG perceptual (both by ``L1Distance``), and ECGAN's pixel contrast and
similarity."""

from synth.models.losses.contrastive import PixelContrastLoss, pixel_contrast_loss
from synth.models.losses.feature_matching import feature_matching_loss
from synth.models.losses.gan import GAN_MODES, GANLoss
from synth.models.losses.l1 import L1Distance
from synth.models.losses.similarity import similarity_loss
from synth.models.losses.vgg_perceptual import VGG_LAYER_WEIGHTS, VGGLoss

__all__ = [
    "GAN_MODES",
    "GANLoss",
    "L1Distance",
    "PixelContrastLoss",
    "VGG_LAYER_WEIGHTS",
    "VGGLoss",
    "feature_matching_loss",
    "pixel_contrast_loss",
    "similarity_loss",
]
