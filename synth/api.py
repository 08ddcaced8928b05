"""A small Python API for notebooks and the editor (synth-web): load a trained run by name and synthesize images
from label and instance maps given as numpy arrays, PIL images, torch tensors or files, with optional per-instance
or per-class cluster choices and styles (feature runs); results come back as numpy arrays, PIL images or tensors.
See docs/api.md.

    from synth.api import load_run
    run = load_run("demo_features", checkpoints_dir="./checkpoints", device="cpu")
    image = run.synthesize("label.png", "inst.png", clusters={2001: 3}, output="pil")
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import torch
import yaml
from PIL import Image

from synth.classes import RunClasses, run_classes
from synth.core.errors import DataError, OptionError
from synth.data.io import read_image, read_instance, read_label, source_name
from synth.editing import check_layout
from synth.features import FeatureClusters, default_cluster_path, paint_features, segment_classes
from synth.inference import load_generator, synthesize_visuals
from synth.models.base_model import LayoutModel
from synth.models.pix2pixhd_model import generator_size_multiple
from synth.runtime import autocast, cast_for_inference
from synth.visualize import tensor_to_image

#: What a map or photo may be given as: an array, a PIL image, a tensor, or a file (path or open binary file).
MapLike = np.ndarray | Image.Image | torch.Tensor | str | PathLike | BinaryIO
Output = Literal["numpy", "pil", "tensor"]


@dataclass(frozen=True)
class Layout:
    """A checked layout: model label ids (H x W int64; don't care is ``label_nc``) and instance ids (or None)."""

    label: np.ndarray
    inst: np.ndarray | None
    name: str = "input"

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.label.shape[1], self.label.shape[0]


def as_id_map(value: MapLike, what: str = "label map", name: str | None = None) -> np.ndarray:
    """An (H, W) int64 id map from any ``MapLike``; files go through the data layer's readers."""
    name = name or what
    if isinstance(value, (str, PathLike)) or hasattr(value, "read"):
        return (read_label if what == "label map" else read_instance)(value)
    if isinstance(value, Image.Image):
        if len(value.getbands()) != 1 or value.mode == "F":
            raise DataError(f"{name}: {what} is a {value.mode} image; a single-channel map of integer ids is expected")
        value = np.asarray(value)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    array = array.reshape(array.shape[-2:]) if array.ndim > 2 and np.prod(array.shape[:-2]) == 1 else array
    if not np.issubdtype(array.dtype, np.integer) and not np.issubdtype(array.dtype, np.bool_):
        raise DataError(f"{name}: {what} holds {array.dtype} values; a map of integer ids is expected")
    return array.astype(np.int64)


def _rgb_array(value: MapLike, name: str) -> np.ndarray:
    """An (H, W, 3) uint8 photo from a file, PIL image, uint8 array or [-1, 1] / [3,H,W] tensor."""
    if isinstance(value, (str, PathLike)) or hasattr(value, "read"):
        return read_image(value)
    if isinstance(value, Image.Image):
        return np.asarray(value.convert("RGB"), dtype=np.uint8).copy()
    if isinstance(value, torch.Tensor):
        return tensor_to_image(value.reshape(value.shape[-3:]))
    array = np.asarray(value)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise DataError(f"{name}: a photo must be H x W x 3 uint8, got {array.dtype} {tuple(array.shape)}")
    return array


def _name(value: Any, default: str) -> str:
    return source_name(value) if isinstance(value, (str, PathLike)) or hasattr(value, "read") else default


def saved_options(checkpoints_dir: str | Path, name: str) -> dict[str, Any]:
    """The run's ``opt.yaml`` (empty when absent: imported runs may have none)."""
    path = Path(checkpoints_dir) / name / "opt.yaml"
    if not path.is_file():
        return {}
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


class Run:
    """A trained run ready to synthesize one layout at a time (eval mode, ``torch.inference_mode``, the run's
    ``--amp``). Feature runs take per-instance cluster choices; instances without one get a cluster drawn from
    ``(seed, instance id)``, so the same layout always gives the same image."""

    def __init__(self, model: LayoutModel, opt: argparse.Namespace, clusters: FeatureClusters | None) -> None:
        self.model = model
        self.opt = opt
        self.clusters = clusters
        self.classes: RunClasses = run_classes(opt)
        self.size_multiple = generator_size_multiple(opt)
        self.device = next(model.parameters()).device

    @classmethod
    def load(
        cls,
        name: str,
        checkpoints_dir: str | Path = "./checkpoints",
        which_epoch: str | int = "latest",
        device: str = "auto",
        amp: str | None = None,
        cluster_path: str | Path | None = None,
        seed: int = 0,
        flags: Sequence[str] = (),
    ) -> Run:
        """Load ``checkpoints_dir/name`` (architecture from the checkpoint). ``amp`` None: the run's own choice;
        ``cluster_path`` None: the run's cluster file when there is one; ``flags``: more test flags."""
        from synth.options import parse_test_options

        amp = amp or saved_options(checkpoints_dir, name).get("amp", "none")
        argv = [
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
            "--seed",
            str(seed),
            "--no_progress",
            *flags,
        ]
        if cluster_path is not None:
            argv += ["--cluster_path", str(cluster_path)]
        opt = parse_test_options(argv)
        model = load_generator(opt)
        cast_for_inference(model, opt)
        return cls(model, opt, load_clusters(model, opt))

    # ----- what the run offers --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.opt.name)

    @property
    def label_nc(self) -> int:
        """How many label ids the run takes."""
        return int(self.opt.label_nc)

    @property
    def uses_features(self) -> bool:
        """Whether G takes per-instance (or per-label) feature vectors."""
        return bool(getattr(self.model, "use_features", False))

    @property
    def needs_instance(self) -> bool:
        """Whether the run needs an instance map (trained without --no_instance)."""
        return not self.opt.no_instance

    def cluster_count(self, label_id: int) -> int:
        """How many texture clusters class ``label_id`` has (0 without clusters)."""
        return self.clusters.cluster_count(label_id) if self.clusters is not None else 0

    # ----- layouts -----------------------------------------------------------------------------------------
    def layout(
        self, label: MapLike, inst: MapLike | None = None, name: str | None = None, inst_name: str | None = None
    ) -> Layout:
        """A checked layout from maps in any accepted form (the same one-line errors as the command line);
        ``name`` / ``inst_name``: what messages call the maps (default: their file names)."""
        label_name = name or _name(label, "label map")
        inst_name = inst_name or (_name(inst, "instance map") if inst is not None else None)
        label_ids = as_id_map(label, "label map", label_name)
        inst_ids = as_id_map(inst, "instance map", inst_name) if inst is not None else None
        label_ids, inst_ids = check_layout(self.opt, label_ids, inst_ids, label_name, inst_name)
        return Layout(label_ids, inst_ids, Path(label_name).stem)

    def segments(self, layout: Layout) -> np.ndarray:
        """What features are pooled over: instance ids (--instance_feat, or any run with instance maps) or labels."""
        use_inst = layout.inst is not None and not getattr(self.opt, "label_feat", False)
        return layout.inst if use_inst else layout.label

    def segment_classes(self, layout: Layout) -> dict[int, int]:
        """Each segment's class (the most frequent label under it)."""
        return segment_classes(layout.label, self.segments(layout))

    # ----- features ----------------------------------------------------------------------------------------
    def default_cluster(self, segment: int, label_id: int, seed: int | None = None) -> int | None:
        """The cluster a segment without a choice gets: drawn from (seed, segment id), so a choice elsewhere
        does not redraw it (``seed`` None: the run's --seed); None without clusters."""
        count = self.cluster_count(label_id)
        seed = self.opt.seed if seed is None else seed
        return int(np.random.default_rng([seed, segment]).integers(count)) if count else None

    def cluster_choices(
        self,
        layout: Layout,
        clusters: Mapping[int, int] | None = None,
        class_clusters: Mapping[int, int] | None = None,
        seed: int | None = None,
    ) -> dict[int, int]:
        """Every segment's cluster index: the chosen one, else its class's choice, else its default; segments
        of classes without clusters are left out. OptionError for an unknown segment / class or an index out of
        range."""
        classes = self.segment_classes(layout)
        by_class = {int(k): int(v) for k, v in (class_clusters or {}).items()}
        for label_id, index in by_class.items():
            if not 0 <= label_id < self.label_nc:
                raise OptionError(f"class_clusters: class {label_id} is out of range (label_nc {self.label_nc})")
            count = self.cluster_count(label_id)
            if not 0 <= index < count:
                raise OptionError(f"class {label_id}: cluster {index} does not exist; class {label_id} has {count} "
                                  "clusters")
        chosen = {int(k): int(v) for k, v in (clusters or {}).items()}
        for segment, index in chosen.items():
            if segment not in classes:
                raise OptionError(f"{layout.name}: instance {segment} is not in the map")
            count = self.cluster_count(classes[segment])
            if not 0 <= index < count:
                raise OptionError(
                    f"instance {segment}: cluster {index} does not exist; class {classes[segment]} has {count} clusters"
                )
        out = {}
        for segment, label_id in classes.items():
            index = chosen.get(segment, by_class.get(label_id, self.default_cluster(segment, label_id, seed)))
            if index is not None:
                out[segment] = index
        return out

    def feature_table(
        self,
        layout: Layout,
        clusters: Mapping[int, int] | None = None,
        styles: Mapping[int, Sequence[float]] | None = None,
        class_clusters: Mapping[int, int] | None = None,
        seed: int | None = None,
    ) -> dict[int, np.ndarray]:
        """Each segment's feature vector: an explicit style (e.g. encoded from a photo), else its cluster centre
        (see ``cluster_choices``); segments of classes without clusters get none (zeros, as in pix2pixHD)."""
        classes = self.segment_classes(layout)
        table = {}
        for segment, index in self.cluster_choices(layout, clusters, class_clusters, seed).items():
            table[segment] = self.clusters.centers[classes[segment]][index]
        feat_num = int(self.opt.feat_num)
        for segment, vector in (styles or {}).items():
            vector = np.asarray(vector, np.float32).reshape(-1)
            if int(segment) not in classes:
                raise OptionError(f"{layout.name}: instance {segment} is not in the map")
            if vector.shape != (feat_num,) or not np.isfinite(vector).all():
                raise OptionError(f"instance {segment}: a style is {feat_num} finite numbers, got {vector.shape[0]}")
            table[int(segment)] = vector
        return table

    @torch.inference_mode()
    def encode_styles(self, photo: MapLike, layout: Layout) -> dict[int, np.ndarray]:
        """Each segment's feature from a photo with E (the photo resized to the layout when its size differs)."""
        if not self.uses_features:
            raise OptionError(f"{self.opt.name}: this run was trained without --instance_feat / --label_feat")
        rgb = _rgb_array(photo, _name(photo, "photo"))
        width, height = layout.size
        if rgb.shape[:2] != (height, width):
            rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.BICUBIC))
        real = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(self.device)
        segments = self.segments(layout)
        seg = torch.from_numpy(segments)[None, None].to(self.device)
        with autocast(self.opt):
            encoded = self.model.encode_features(real, seg)[0].float().cpu().numpy()
        ids, first = np.unique(segments.reshape(-1), return_index=True)
        flat = encoded.reshape(encoded.shape[0], -1)
        return {int(s): flat[:, i].copy() for s, i in zip(ids, first, strict=True)}  # pooled: any pixel will do

    # ----- synthesis ---------------------------------------------------------------------------------------
    def render(self, layout: Layout, table: Mapping[int, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """``synthesized_image`` (H x W x 3 uint8), plus the model's extra pictures (ECGAN: ``edge_map``)."""
        fake, extra = self.generate(layout, table)
        return {"synthesized_image": tensor_to_image(fake[0])} | {k: tensor_to_image(v[0]) for k, v in extra.items()}

    @torch.inference_mode()
    def generate(
        self, layout: Layout, table: Mapping[int, np.ndarray] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """G's float output [1, 3, H, W] in [-1, 1] (on the CPU) and the model's extra pictures."""
        batch = {"label": torch.from_numpy(layout.label)[None, None]}
        if self.needs_instance:
            batch["inst"] = torch.from_numpy(layout.inst)[None, None]
        semantics, _ = self.model.encode_input(batch)
        features = None
        if self.uses_features:
            painted = paint_features(self.segments(layout), table or {}, int(self.opt.feat_num))
            features = torch.from_numpy(painted)[None].to(self.device)
        with autocast(self.opt):
            fake, extra = synthesize_visuals(self.model, self.model.generator_input(semantics, features))
        return fake.float().cpu(), {k: v.float().cpu() for k, v in extra.items()}

    def layout_and_table(
        self,
        label: MapLike | Layout,
        inst: MapLike | None = None,
        clusters: Mapping[int, int] | None = None,
        class_clusters: Mapping[int, int] | None = None,
        seed: int | None = None,
        styles: Mapping[int, Sequence[float]] | None = None,
        photo: MapLike | None = None,
    ) -> tuple[Layout, dict[int, np.ndarray]]:
        """The checked layout and its feature table (empty for runs without features)."""
        layout = label if isinstance(label, Layout) else self.layout(label, inst)
        if not self.uses_features:
            if clusters or class_clusters or styles or photo is not None:
                raise OptionError(f"{self.name}: cluster and style choices need a feature run "
                                  "(--instance_feat/--label_feat)")
            return layout, {}
        encoded = self.encode_styles(photo, layout) if photo is not None else {}
        return layout, self.feature_table(layout, clusters, {**encoded, **(styles or {})}, class_clusters, seed)

    def synthesize_all(
        self, label: MapLike | Layout, inst: MapLike | None = None, **choices: Any
    ) -> dict[str, np.ndarray]:
        """Every picture the model makes for a layout (see ``render``); ``choices`` as for ``synthesize``."""
        return self.render(*self.layout_and_table(label, inst, **choices))

    def synthesize(
        self,
        label: MapLike | Layout,
        instance: MapLike | None = None,
        clusters: Mapping[int, int] | None = None,
        class_clusters: Mapping[int, int] | None = None,
        seed: int | None = None,
        output: Output = "numpy",
        *,
        styles: Mapping[int, Sequence[float]] | None = None,
        photo: MapLike | None = None,
    ) -> np.ndarray | Image.Image | torch.Tensor:
        """The synthesized image: H x W x 3 uint8 (``output="numpy"``), a PIL image (``"pil"``) or G's float
        [3, H, W] tensor in [-1, 1] (``"tensor"``). ``clusters``: segment id -> cluster index; ``class_clusters``:
        class id -> cluster index; the rest drawn from ``seed``; ``styles``: segment id -> feature vector;
        ``photo``: every segment's style encoded from it."""
        if output not in ("numpy", "pil", "tensor"):
            raise OptionError(f"output must be 'numpy', 'pil' or 'tensor', not {output!r}")
        layout, table = self.layout_and_table(label, instance, clusters, class_clusters, seed, styles, photo)
        fake = self.generate(layout, table)[0][0]
        if output == "tensor":
            return fake
        image = tensor_to_image(fake)
        return Image.fromarray(image) if output == "pil" else image

    def variants(
        self,
        layout: Layout,
        segment: int,
        clusters: Mapping[int, int] | None = None,
        styles: Mapping[int, Sequence[float]] | None = None,
        count: int = 6,
    ) -> list[tuple[int, np.ndarray]]:
        """(cluster index, image) for the first ``count`` clusters of one segment's class, the rest unchanged."""
        classes = self.segment_classes(layout)
        if segment not in classes:
            raise OptionError(f"{layout.name}: instance {segment} is not in the map")
        others = {k: v for k, v in (styles or {}).items() if int(k) != segment}
        out = []
        for index in range(min(count, self.cluster_count(classes[segment]))):
            table = self.feature_table(layout, {**(clusters or {}), segment: index}, others)
            out.append((index, self.render(layout, table)["synthesized_image"]))
        return out


def load_run(
    name: str,
    checkpoints_dir: str | PathLike = "checkpoints",
    which_epoch: str | int = "latest",
    device: str = "cpu",
    amp: str | None = "none",
    **options: Any,
) -> Run:
    """The run ``checkpoints_dir/name`` at ``which_epoch``, loaded as synth-test loads it (architecture from the
    checkpoint; a feature run's clusters from its folder); ``options``: more of ``Run.load``'s arguments."""
    return Run.load(name, checkpoints_dir, which_epoch, device, amp, **options)


def load_clusters(model: LayoutModel, opt: argparse.Namespace) -> FeatureClusters | None:
    """The run's cluster file for a feature run: ``--cluster_path`` (must exist) or the run folder's (when
    present); None for runs without features or without a cluster file yet."""
    if not getattr(model, "use_features", False):
        return None
    if opt.cluster_path:
        return FeatureClusters.load(opt.cluster_path)
    path = default_cluster_path(opt)
    return FeatureClusters.load(path) if path.is_file() else None


__all__ = ["Layout", "MapLike", "Output", "Run", "as_id_map", "load_clusters", "load_run", "saved_options"]
