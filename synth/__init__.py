"""synth: semantic layouts to photorealistic images (pix2pixHD and its successors)."""

__version__ = "0.1.0"
