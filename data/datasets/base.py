"""The dataset base class and the helpers dataset modes use to find and pair label, instance and image files."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from synth.core.errors import DataError, OptionError
from synth.data.edges import edge_tensor
from synth.data.feature_maps import feature_dir, find_feature_map, read_feature_map
from synth.data.io import check_lossless, image_size, read_image, read_instance, read_label
from synth.data.transforms import apply_to_image, apply_to_label, choose_params, minimum_side, output_size

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
#: Instance ids are 16-bit (Cityscapes: class*1000+k); instance-wise pooling relies on this bound.
MAX_INSTANCE_ID = 1 << 16
KNOWN_SUFFIXES = ("_leftImg8bit", "_gtFine_labelIds", "_gtFine_instanceIds", "_gtFine_color")
DONTCARE_ID = 255


@dataclass(frozen=True)
class Sample:
    """One training/inference example: its pairing key and the files holding its maps and photo."""

    key: str
    label: Path
    inst: Path | None
    image: Path | None


def sample_key(path: Path) -> str:
    """The name files are paired by: the stem without Cityscapes' ``_leftImg8bit``/``_gtFine_*`` suffixes."""
    stem = path.stem
    for suffix in KNOWN_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def list_image_files(
    folder: Path, *, suffix: str = "", recursive: bool = False, what: str | None = None, hint: str = ""
) -> list[Path]:
    """Sorted image files in ``folder`` whose stem ends with ``suffix``; DataError if the folder is missing
    (or, when ``what`` is given, if nothing is found)."""
    folder = Path(folder)
    if not folder.is_dir():
        problem = "folder not found" if not folder.exists() else "is not a folder"
        raise DataError(f"{folder}: {problem}{hint}")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(
        p
        for p in candidates
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and p.stem.endswith(suffix)
    )
    if what is not None and not files:
        raise DataError(f"{folder}: no {what} found")
    return files


def index_by_key(files: Iterable[Path]) -> dict[str, Path]:
    """Map each file's pairing key to the file; DataError when two files share a key."""
    index: dict[str, Path] = {}
    for path in files:
        key = sample_key(path)
        if key in index:
            raise DataError(f"{path}: has the same name as {index[key]}; files are paired by name, keep one")
        index[key] = path
    return index


def pair_files(
    labels: list[Path],
    images: list[Path] | None = None,
    insts: list[Path] | None = None,
    *,
    image_dir: Path | None = None,
    inst_dir: Path | None = None,
) -> list[Sample]:
    """Pair label maps with photos and instance maps by key; every photo needs a label map and, when photos or
    instance maps are given, every label map needs one too (DataError naming the unmatched file)."""
    label_index = index_by_key(labels)
    image_index = index_by_key(images) if images is not None else {}
    inst_index = index_by_key(insts) if insts is not None else {}
    label_dir = labels[0].parent if labels else None
    for key, image in image_index.items():
        if key not in label_index:
            raise DataError(f"{image}: photo has no label map named '{key}' in {label_dir}")
    samples = []
    for key, label in label_index.items():
        if images is not None and key not in image_index:
            raise DataError(f"{label}: label map has no photo named '{key}' in {image_dir}")
        if insts is not None and key not in inst_index:
            raise DataError(
                f"{label}: label map has no instance map named '{key}' in {inst_dir}; add it or pass --no_instance"
            )
        samples.append(Sample(key, label, inst_index.get(key), image_index.get(key)))
    return samples


def _image_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float [3, H, W] in [-1, 1]."""
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def check_same_size(path: Path | str, size: tuple[int, ...], label_path: Path | str,
                    label_size: tuple[int, ...]) -> None:
    """DataError unless an instance map or photo of shape ``size`` matches its label map's (``label_path`` may be
    the bare words "label map", synth.api's name for an in-memory map, which the message then does not repeat)."""
    if size[:2] != label_size[:2]:
        label = "its label map" if str(label_path) == "label map" else f"its label map {label_path}"
        raise DataError(f"{path}: size {size[1]}x{size[0]} differs from {label} ({label_size[1]}x{label_size[0]})")


def check_label_ids(arr: np.ndarray, path: Path | str, label_nc: int, contain_dontcare_label: bool) -> np.ndarray:
    """Model ids of a (remapped) label map: don't-care 255 becomes ``label_nc`` when the run has that channel;
    DataError naming the file when an id is not a valid channel."""
    valid = (arr >= 0) & (arr < label_nc)
    if contain_dontcare_label:
        dontcare = arr == DONTCARE_ID
        valid |= dontcare
        arr = np.where(dontcare, label_nc, arr)
    if not valid.all():
        bad = arr[~valid]
        worst = int(bad.max()) if bad.max() >= label_nc else int(bad.min())
        hint = f"set --label_nc {worst + 1} or more" if worst >= 0 else "ids must not be negative"
        if worst == DONTCARE_ID and not contain_dontcare_label:
            hint += " (or pass --contain_dontcare_label if 255 means don't care)"
        raise DataError(
            f"{path}: label id {worst} found but --label_nc is {label_nc} "
            f"(ids must be in [0, {label_nc})); {hint}"
        )
    return arr


def check_instance_ids(inst: np.ndarray, path: Path | str) -> None:
    """DataError unless every instance id fits the 16-bit range instance pooling relies on."""
    if inst.min() < 0 or inst.max() >= MAX_INSTANCE_ID:
        raise DataError(f"{path}: instance ids must lie in [0, {MAX_INSTANCE_ID}), found {inst.max()}")


class LayoutDataset(Dataset):
    """Label maps (+ instance maps, + photos) for one ``--dataset_mode``.

    A subclass implements:
      - ``find_samples(self) -> list[Sample]``: the examples, paired (use ``list_image_files`` and ``pair_files``);
      - optionally ``remap_label(self, arr) -> arr``: dataset ids -> model ids (255 = don't care).
    ``__getitem__`` returns a dict: ``label`` LongTensor[1,H,W], ``inst`` LongTensor[1,H,W] (unless
    ``opt.no_instance``), ``image`` FloatTensor[3,H,W] in [-1,1] (when the sample has a photo), ``edge``
    FloatTensor[1,H,W] in [-1,1] (Canny edges of that photo, with ``opt.need_edges``), ``feat``
    FloatTensor[feat_num,H,W] (the precomputed map in ``{dataroot}/{phase}_feat``, with ``opt.need_feature_maps``;
    resized, cropped and flipped as the label map, nearest), ``key``, ``label_path``.
    Augmentation draws from ``random.Random(f"{seed}-{epoch}-{index}")``: call ``set_epoch``.
    """

    def __init__(self, opt: Any) -> None:
        self.opt = opt
        self.epoch = 0
        self.samples: list[Sample] = self.find_samples()
        if not self.samples:
            raise DataError(f"{opt.dataroot}: no label maps found")
        if getattr(opt, "max_dataset_size", 0):
            self.samples = self.samples[: opt.max_dataset_size]
        self.has_images: bool = all(s.image is not None for s in self.samples)
        if getattr(opt, "need_feature_maps", False):  # a missing map fails now, not hours into training
            folder = feature_dir(opt.dataroot, opt.phase)
            self.feature_maps = {s.key: find_feature_map(folder, s.key, s.label) for s in self.samples}
        self._check_files()

    def _check_files(self) -> None:
        """Before any sample is loaded: no id map in a lossy format, and every label map's size makes an input the
        networks take, the same for all when batches hold several (names the first offending file)."""
        opt = self.opt
        allow_lossy = getattr(opt, "allow_lossy_labels", False)
        multiple = getattr(opt, "size_multiple", 1)
        smallest = minimum_side(multiple)
        first: tuple[Path, tuple[int, int]] | None = None
        for sample in self.samples:
            check_lossless(sample.label, "label map", allow_lossy)
            if sample.inst is not None:
                check_lossless(sample.inst, "instance map", allow_lossy)
            source = image_size(sample.label)
            try:
                size = output_size(opt, source)
            except OptionError as err:
                raise OptionError(f"{sample.label}: {err}") from None
            if min(size) < smallest:
                raise DataError(
                    f"{sample.label}: its {source[0]}x{source[1]} pixels make a {size[0]}x{size[1]} input "
                    f"(--resize_or_crop {opt.resize_or_crop}), smaller than the {smallest} pixels a side the "
                    f"generator takes (total stride {multiple}); use larger images, --loadSize, or a shallower "
                    "generator (--n_downsample_global)"
                )
            if first is None:
                first = (sample.label, size)
            elif size != first[1] and getattr(opt, "batchSize", 1) > 1:
                raise DataError(
                    f"{sample.label}: makes a {size[0]}x{size[1]} input but {first[0]} makes {first[1][0]}x"
                    f"{first[1][1]}; a batch (--batchSize {opt.batchSize}) needs one size: use --batchSize 1, "
                    "images of one size, or a cropping --resize_or_crop"
                )

    def find_samples(self) -> list[Sample]:
        """The dataset's examples; subclasses must implement it."""
        raise NotImplementedError

    def remap_label(self, arr: np.ndarray) -> np.ndarray:
        """Dataset ids -> model ids; identity by default."""
        return arr

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations ``__getitem__`` draws (reproducible across workers and resumes)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def _label_ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Remap, map don't-care (255) to ``label_nc`` and check every id is a valid channel."""
        return check_label_ids(self.remap_label(raw), path, self.opt.label_nc, self.opt.contain_dontcare_label)

    def __getitem__(self, index: int) -> dict[str, Any]:
        opt, sample = self.opt, self.samples[index]
        rng = random.Random(f"{opt.seed}-{self.epoch}-{index}")
        label = self._label_ids(read_label(sample.label), sample.label)
        height, width = label.shape
        try:
            params = choose_params(opt, (width, height), rng)
        except OptionError as err:
            raise OptionError(f"{sample.label}: {err}") from None
        item: dict[str, Any] = {
            "label": torch.from_numpy(apply_to_label(label, params)[None]).long(),
            "key": sample.key,
            "label_path": str(sample.label),
        }
        if not opt.no_instance:
            item["inst"] = self._instance(sample, label.shape, params)
        if getattr(opt, "need_feature_maps", False):
            feat = read_feature_map(self.feature_maps[sample.key], opt.feat_num, label.shape)
            item["feat"] = torch.from_numpy(apply_to_label(feat, params)).permute(2, 0, 1).contiguous()
        if sample.image is not None:
            image = read_image(sample.image)
            check_same_size(sample.image, image.shape, sample.label, label.shape)
            image = apply_to_image(image, params)
            item["image"] = _image_tensor(image)
            if getattr(opt, "need_edges", False):  # on the transformed photo, so edges align with the crop/flip
                item["edge"] = edge_tensor(image, opt.canny_low, opt.canny_high)
        return item

    def source_segments(self, index: int, by_instance: bool) -> np.ndarray:
        """Sample ``index``'s untransformed instance map (``by_instance``) or label ids: what its features are
        constant over at the file's own size."""
        sample = self.samples[index]
        if by_instance:
            if sample.inst is None:
                raise DataError(f"{sample.label}: no instance map for this label map")
            return read_instance(sample.inst)
        return self._label_ids(read_label(sample.label), sample.label)

    def _instance(self, sample: Sample, label_shape: tuple[int, ...], params: Any) -> torch.Tensor:
        """The sample's transformed instance map; DataError if it has none or its size differs."""
        if sample.inst is None:
            raise DataError(f"{sample.label}: no instance map for this label map; add one or pass --no_instance")
        inst = read_instance(sample.inst)
        check_same_size(sample.inst, inst.shape, sample.label, label_shape)
        check_instance_ids(inst, sample.inst)
        return torch.from_numpy(apply_to_label(inst, params)[None]).long()
