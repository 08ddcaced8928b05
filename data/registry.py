"""The data layer's registry: dataset modes (``--dataset_mode``) are picked by name from this table."""

from synth.core.registry import Registry

DATASETS = Registry("dataset mode (--dataset_mode)")
