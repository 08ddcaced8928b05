"""Instance editing with a feature-conditioned model: pick the texture cluster of one instance, change an
instance's class, or give every instance of a class one cluster; regenerate and compare side by side."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from synth.core.errors import DataError, OptionError
from synth.data.datasets.base import check_instance_ids, check_label_ids, check_same_size
from synth.data.io import check_lossless, read_image, read_instance, read_label
from synth.features import (
    FeatureClusters,
    paint_features,
    sample_segment_features,
    segment_classes,
)
from synth.models.pix2pixhd_model import Pix2PixHDModel, generator_size_multiple
from synth.visualize import colorize_label, save_png, tensor_to_image


@dataclass
class EditRequest:
    """What to change: instance -> cluster index, instance -> new class, class -> cluster index for all."""

    set_cluster: dict[int, int] = field(default_factory=dict)
    set_class: dict[int, int] = field(default_factory=dict)
    class_cluster: dict[int, int] = field(default_factory=dict)


@dataclass
class Layout:
    """One image's label map, instance map and optional photo. ``segments`` is what features are pooled over:
    instance ids (--instance_feat) or label ids (--label_feat)."""

    label: np.ndarray
    inst: np.ndarray | None
    instance_feat: bool
    image: np.ndarray | None = None
    name: str = "input"

    @property
    def segments(self) -> np.ndarray:
        return self.inst if self.instance_feat and self.inst is not None else self.label


def check_layout(
    opt: argparse.Namespace, label: np.ndarray, inst: np.ndarray | None, label_name: str, inst_name: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(model label ids, instance ids) of a layout for the run ``opt``, with the data layer's one-line checks:
    ids below label_nc (255 = don't care when the run has it), the instance map present when the run uses one, of
    the same size, and both sides divisible by the generator's total stride."""
    if label.ndim != 2:
        raise DataError(f"{label_name}: a label map must be one channel of ids, got shape {tuple(label.shape)}")
    label = check_label_ids(label, label_name, opt.label_nc, opt.contain_dontcare_label)
    if inst is None and not opt.no_instance:
        raise DataError(f"{label_name}: this model needs the instance map too (--inst)")
    if inst is not None:
        if inst.ndim != 2:
            raise DataError(f"{inst_name}: an instance map must be one channel of ids, got shape {tuple(inst.shape)}")
        check_same_size(inst_name, inst.shape, label_name, label.shape)
        check_instance_ids(inst, inst_name)
    multiple = generator_size_multiple(opt)
    height, width = label.shape
    if height % multiple or width % multiple:
        raise DataError(
            f"{label_name}: size {width}x{height} is not divisible by {multiple}, the generator's total stride; "
            f"crop or pad it to a multiple of {multiple}"
        )
    return label, inst


class InstanceEditor:
    """Regenerates a layout with per-instance features chosen from the clusters (or encoded from a photo)."""

    def __init__(self, model: Pix2PixHDModel, clusters: FeatureClusters, seed: int = 0) -> None:
        if not model.use_features:
            raise OptionError("instance editing needs a model trained with --instance_feat or --label_feat")
        self.model = model
        self.opt = model.opt
        self.clusters = clusters
        self.seed = seed
        self.device = next(model.parameters()).device

    def load_layout(self, label_path: str, inst_path: str | None = None, image_path: str | None = None) -> Layout:
        """Read the files with the data layer's checks; sizes must match and divide by the generator's stride."""
        allow_lossy = getattr(self.opt, "allow_lossy_labels", False)
        check_lossless(label_path, "label map", allow_lossy)
        if inst_path:
            check_lossless(inst_path, "instance map", allow_lossy)
        label, inst = check_layout(
            self.opt, read_label(label_path), read_instance(inst_path) if inst_path else None, label_path, inst_path
        )
        image = read_image(image_path) if image_path else None
        if image is not None:
            check_same_size(image_path, image.shape, label_path, label.shape)
        return Layout(label, inst, self.opt.instance_feat, image, Path(label_path).stem)

    def features(self, layout: Layout) -> dict[int, np.ndarray]:
        """Each segment's feature: encoded from the photo when there is one, else sampled from the clusters."""
        classes = segment_classes(layout.label, layout.segments)
        if layout.image is None:
            return sample_segment_features(classes, self.clusters, {}, np.random.default_rng(self.seed))
        real = torch.from_numpy(layout.image).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(self.device)
        segments = torch.from_numpy(layout.segments)[None, None].to(self.device)
        with torch.inference_mode():
            encoded = self.model.encode_features(real, segments)[0].cpu().numpy()
        ids, first = np.unique(layout.segments.reshape(-1), return_index=True)
        flat = encoded.reshape(encoded.shape[0], -1)
        return {int(s): flat[:, i] for s, i in zip(ids, first, strict=True)}  # pooled: any pixel of s will do

    def apply(self, layout: Layout, table: dict[int, np.ndarray], request: EditRequest) -> tuple[Layout, dict]:
        """The edited layout and feature table; every id, class and cluster index is checked first."""
        classes = segment_classes(layout.label, layout.segments)
        self._check(layout, classes, request)
        label, table = layout.label.copy(), dict(table)
        rng = np.random.default_rng(self.seed + 1)
        for segment, new_class in request.set_class.items():
            label[layout.segments == segment] = new_class
            if not layout.instance_feat:  # --label_feat: the segment is the label region, renamed with its class
                table[new_class] = table.pop(segment, None)
                segment = new_class
            classes[segment] = new_class
            count = self.clusters.cluster_count(new_class)
            if count:
                table[segment] = self.clusters.centers[new_class][int(rng.integers(count))]
            else:
                table.pop(segment, None)
        for segment, label_id in classes.items():
            if label_id in request.class_cluster:
                table[segment] = self.clusters.centers[label_id][request.class_cluster[label_id]]
        for segment, index in request.set_cluster.items():
            table[segment] = self.clusters.centers[classes[segment]][index]
        return Layout(label, layout.inst, layout.instance_feat, layout.image, layout.name), table

    def _check(self, layout: Layout, classes: dict[int, int], request: EditRequest) -> None:
        where = f"{layout.name}"
        for segment in [*request.set_cluster, *request.set_class]:
            if segment not in classes:
                raise OptionError(f"{where}: instance {segment} is not in the map (ids: {sorted(classes)[:20]})")
        for new_class in request.set_class.values():
            if not 0 <= new_class < self.opt.label_nc:
                raise OptionError(f"class {new_class} is out of range: the model has label_nc {self.opt.label_nc}")
        targets = [(classes[s], k, f"instance {s}") for s, k in request.set_cluster.items()]
        targets += [(c, k, f"class {c}") for c, k in request.class_cluster.items()]
        for label_id, index, what in targets:
            if not 0 <= label_id < self.opt.label_nc:
                raise OptionError(f"class {label_id} is out of range: the model has label_nc {self.opt.label_nc}")
            count = self.clusters.cluster_count(label_id)
            if not 0 <= index < count:
                raise OptionError(f"{what}: cluster {index} does not exist; class {label_id} has {count} clusters")

    @torch.inference_mode()
    def render(self, layout: Layout, table: dict[int, np.ndarray]) -> np.ndarray:
        """The synthesized image (H x W x 3 uint8) for a layout and its feature table."""
        batch = {"label": torch.from_numpy(layout.label)[None, None]}
        if not self.opt.no_instance:
            batch["inst"] = torch.from_numpy(layout.inst)[None, None]
        semantics, _ = self.model.encode_input(batch)
        features = torch.from_numpy(paint_features(layout.segments, table, self.clusters.feat_num))[None]
        fake = self.model(self.model.generator_input(semantics, features.to(self.device)))
        return tensor_to_image(fake[0])

    def edit(self, layout: Layout, request: EditRequest) -> tuple[np.ndarray, np.ndarray, Layout]:
        """(original synthesis, edited synthesis, edited layout)."""
        table = self.features(layout)
        edited, edited_table = self.apply(layout, table, request)
        return self.render(layout, table), self.render(edited, edited_table), edited


def save_edit(out_dir: Path, layout: Layout, edited: Layout, before: np.ndarray, after: np.ndarray,
              label_nc: int) -> Path:
    """Save before/after next to each other, plus a side-by-side strip: label, original, edited label, edited."""
    save_png(out_dir / f"{layout.name}_original.png", before)
    save_png(out_dir / f"{layout.name}_edited.png", after)
    strip = np.concatenate(
        [colorize_label(layout.label, label_nc), before, colorize_label(edited.label, label_nc), after], axis=1
    )
    return save_png(out_dir / f"{layout.name}_side_by_side.png", strip)
