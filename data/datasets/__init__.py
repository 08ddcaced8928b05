"""Dataset modes; importing this package registers each of them in ``data.registry.DATASETS``."""

from synth.data.datasets import ade20k, cityscapes, labels, pix2pixhd
from synth.data.datasets.base import LayoutDataset, Sample

__all__ = ["LayoutDataset", "Sample", "ade20k", "cityscapes", "labels", "pix2pixhd"]
