"""The data layer: dataset modes (label/instance/photo files -> tensors) and the tensor preprocessing the models use.

Importing it only registers the dataset modes; no files are read until ``create_dataset`` is called.
"""

from __future__ import annotations

from typing import Any

from synth.data.datasets import LayoutDataset
from synth.data.preprocess import effective_label_nc, instance_boundaries, one_hot
from synth.data.registry import DATASETS


def create_dataset(opt: Any) -> LayoutDataset:
    """The dataset named by ``opt.dataset_mode``, built from ``opt`` (OptionError for an unknown mode)."""
    return DATASETS.get(opt.dataset_mode)(opt)


__all__ = ["LayoutDataset", "create_dataset", "effective_label_nc", "instance_boundaries", "one_hot"]
