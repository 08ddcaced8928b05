"""The model layer's registries: networks and whole models are picked by name from these tables."""

from synth.core.registry import Registry

GENERATORS = Registry("generator (--netG)")
DISCRIMINATORS = Registry("discriminator (--netD)")
ENCODERS = Registry("encoder (--netE)")
MODELS = Registry("model (--model)")
