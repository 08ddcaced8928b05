"""Dataset modes; importing this package registers each of them in ``data.registry.DATASETS``."""

from data.datasets import ade20k, cityscapes, labels, pix2pixhd
from data.datasets.base import LayoutDataset, Sample

__all__ = ["LayoutDataset", "Sample", "ade20k", "cityscapes", "labels", "pix2pixhd"]
