"""A small Python API for notebooks and editors: load a trained run by name, synthesize from label/instance maps
given as numpy arrays, PIL images, tensors or files, with optional cluster choices; get arrays or PIL images back.
See docs/api.md."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from os import PathLike
from typing import Literal

import numpy as np
import torch
from PIL import Image

from synth.core.errors import DataError, OptionError
from synth.data.io import read_instance, read_label
from synth.features import (
    FeatureClusters,
    default_cluster_path,
    paint_features,
    sample_segment_features,
    segment_classes,
)
from synth.inference import _synthesize, load_generator
from synth.models.base_model import LayoutModel
from synth.models.pix2pixhd_model import generator_size_multiple
from synth.options import parse_test_options
from synth.runtime import autocast
from synth.visualize import tensor_to_image

MapInput = np.ndarray | Image.Image | torch.Tensor | str | PathLike
Output = Literal["numpy", "pil", "tensor"]


def load_run(
    name: str,
    checkpoints_dir: str | PathLike = "checkpoints",
    which_epoch: str = "latest",
    device: str = "cpu",
    amp: str = "none",
) -> Run:
    """The run ``checkpoints_dir/name`` at ``which_epoch``, loaded as synth-test loads it (architecture from the
    checkpoint; a feature run's clusters from its folder)."""
    opt = parse_test_options(
        [
            "--name",
            name,
            "--checkpoints_dir",
            str(checkpoints_dir),
            "--which_epoch",
            str(which_epoch),
            "--device",
            device,
            "--amp",
            amp,
            "--no_progress",
        ]
    )
    return Run(load_generator(opt), opt)


def as_id_map(value: MapInput, what: str) -> np.ndarray:
    """An (H, W) int64 id map from an array, PIL image, tensor or file path; one-line DataError otherwise."""
    if isinstance(value, (str, PathLike)):
        return read_instance(value) if what == "instance" else read_label(value)
    if isinstance(value, Image.Image):
        if len(value.getbands()) != 1:
            raise DataError(f"{what}: PIL image has mode {value.mode}; a single-channel map of ids is expected")
        array = np.asarray(value)
    elif isinstance(value, torch.Tensor):
        array = value.detach().cpu().numpy()
    elif isinstance(value, np.ndarray):
        array = value
    else:
        raise DataError(
            f"{what}: expected a numpy array, PIL image, torch tensor or file path, not {type(value).__name__}"
        )
    array = np.squeeze(array) if array.ndim > 2 else array
    if array.ndim != 2:
        raise DataError(f"{what}: expected an H x W map of ids, got shape {tuple(array.shape)}")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise DataError(f"{what}: holds {array.dtype} values; a map of integer ids is expected")
    if array.size and array.min() < 0:
        raise DataError(f"{what}: holds negative id {int(array.min())}")
    return array.astype(np.int64)


class Run:
    """A trained run ready to synthesize; ``label_nc`` and (for feature runs) ``clusters`` describe it."""

    def __init__(self, model: LayoutModel, opt: argparse.Namespace) -> None:
        self.model = model
        self.opt = opt
        self.name = opt.name
        self.size_multiple = generator_size_multiple(opt)
        self.uses_features = bool(getattr(model, "use_features", False))
        self.clusters = FeatureClusters.load(default_cluster_path(opt)) if self.uses_features else None

    @property
    def label_nc(self) -> int:
        """How many label ids the run takes (0 means the label map is already an RGB-like image)."""
        return int(self.opt.label_nc)

    @property
    def needs_instance(self) -> bool:
        """Whether synthesize() needs an instance map (runs trained without --no_instance)."""
        return not self.opt.no_instance

    def synthesize(
        self,
        label: MapInput,
        instance: MapInput | None = None,
        clusters: Mapping[int, int] | None = None,
        class_clusters: Mapping[int, int] | None = None,
        seed: int = 0,
        output: Output = "numpy",
    ) -> np.ndarray | Image.Image | torch.Tensor:
        """The image synthesized from ``label`` (and ``instance``): uint8 H x W x 3 numpy, a PIL image, or the
        generator's float [3, H, W] tensor in [-1, 1]. Feature runs: ``clusters`` picks a cluster per segment
        (instance id, or class id with --label_feat), ``class_clusters`` one per class; the rest drawn by ``seed``."""
        if output not in ("numpy", "pil", "tensor"):
            raise OptionError(f"output must be 'numpy', 'pil' or 'tensor', not {output!r}")
        label_map, inst_map = self._check_maps(label, instance)
        batch = {"label": torch.from_numpy(label_map)[None, None]}
        if inst_map is not None:
            batch["inst"] = torch.from_numpy(inst_map)[None, None]
        device = next(self.model.parameters()).device
        with torch.inference_mode(), autocast(self.opt):
            semantics, _ = self.model.encode_input(batch)
            features = None
            if self.uses_features:
                table = self.feature_table(label_map, inst_map, clusters or {}, class_clusters or {}, seed)
                segments = self._segments(label_map, inst_map)
                features = torch.from_numpy(paint_features(segments, table, self.clusters.feat_num))[None]
                features = features.to(device)
            elif clusters or class_clusters:
                raise OptionError(f"{self.name}: cluster choices need a feature run (--instance_feat/--label_feat)")
            fake, _ = _synthesize(self.model, self.model.generator_input(semantics, features))
        image = fake[0].float().cpu()
        if output == "tensor":
            return image
        array = tensor_to_image(image)
        return Image.fromarray(array) if output == "pil" else array

    def feature_table(
        self,
        label: np.ndarray,
        inst: np.ndarray | None,
        clusters: Mapping[int, int],
        class_clusters: Mapping[int, int],
        seed: int,
    ) -> dict[int, np.ndarray]:
        """Each segment's cluster centre: drawn with ``seed`` first (so a choice leaves the others as they were),
        then the class choices, then the per-segment choices; every id and index is checked."""
        classes = segment_classes(label, self._segments(label, inst))
        table = sample_segment_features(classes, self.clusters, {}, np.random.default_rng(seed))
        kind = "instance" if self.opt.instance_feat else "class"
        for segment, index in clusters.items():
            if segment not in classes:
                raise OptionError(f"clusters: {kind} {segment} is not in the map (ids: {sorted(classes)[:20]})")
            table[segment] = self._centre(classes[segment], index, f"{kind} {segment}")
        for label_id, index in class_clusters.items():
            if not 0 <= label_id < self.label_nc:
                raise OptionError(f"class_clusters: class {label_id} is out of range (label_nc {self.label_nc})")
            centre = self._centre(label_id, index, f"class {label_id}")
            for segment, segment_class in classes.items():
                if segment_class == label_id and segment not in clusters:
                    table[segment] = centre
        return table

    def _centre(self, label_id: int, index: int, what: str) -> np.ndarray:
        count = self.clusters.cluster_count(label_id)
        if not 0 <= index < count:
            raise OptionError(f"{what}: cluster {index} does not exist; class {label_id} has {count} clusters")
        return self.clusters.centers[label_id][index]

    def _segments(self, label: np.ndarray, inst: np.ndarray | None) -> np.ndarray:
        return inst if self.opt.instance_feat and inst is not None else label

    def _check_maps(self, label: MapInput, instance: MapInput | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Both maps as int64 arrays, after the checks synth-test's data layer makes (ids, sizes, stride)."""
        label_map = as_id_map(label, "label")
        where = str(label) if isinstance(label, (str, PathLike)) else "label"
        if self.label_nc and label_map.max() >= self.label_nc:
            raise DataError(f"{where}: label id {int(label_map.max())} >= label_nc {self.label_nc}")
        height, width = label_map.shape
        if height % self.size_multiple or width % self.size_multiple:
            raise DataError(
                f"{where}: size {width}x{height} is not a multiple of {self.size_multiple}, "
                f"which this run's generator needs"
            )
        if instance is None:
            if self.needs_instance:
                raise DataError(f"{self.name}: this run was trained with instance maps; pass instance=")
            return label_map, None
        inst_map = as_id_map(instance, "instance")
        if inst_map.shape != label_map.shape:
            inst_where = str(instance) if isinstance(instance, (str, PathLike)) else "instance"
            raise DataError(
                f"{inst_where}: size {inst_map.shape[1]}x{inst_map.shape[0]} differs from the label's {width}x{height}"
            )
        return label_map, inst_map if self.needs_instance else None


__all__ = ["Run", "as_id_map", "load_run"]
