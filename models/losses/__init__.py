"""Losses: adversarial, feature matching and VGG perceptual."""

from models.losses.feature_matching import feature_matching_loss
from models.losses.gan import GAN_MODES, GANLoss
from models.losses.vgg_perceptual import VGG_LAYER_WEIGHTS, VGGLoss

__all__ = ["GAN_MODES", "GANLoss", "VGG_LAYER_WEIGHTS", "VGGLoss", "feature_matching_loss"]
