"""ADE20K (SceneParsing challenge): ``ADEChallengeData2016/images/{training,validation}/*.jpg`` and
``annotations/{training,validation}/*.png``; no instance maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synth.core.errors import OptionError
from synth.data.datasets.base import DONTCARE_ID, LayoutDataset, Sample, list_image_files, pair_files
from synth.data.registry import DATASETS

ADE_CLASSES = 150
SPLITS = {"train": "training", "val": "validation", "test": "validation"}


@DATASETS.register("ade20k")
class ADE20KDataset(LayoutDataset):
    """Raw id 0 is 'unlabeled': with --contain_dontcare_label it becomes don't care and k -> k-1 (--label_nc 150,
    SPADE's convention); without it raw ids are kept and --label_nc must be at least 151."""

    def find_samples(self) -> list[Sample]:
        opt = self.opt
        if not opt.no_instance:
            raise OptionError("dataset mode 'ade20k' has no instance maps; pass --no_instance")
        if not opt.contain_dontcare_label and opt.label_nc <= ADE_CLASSES:
            raise OptionError(
                f"ADE20K raw ids go up to {ADE_CLASSES} with 0 = unlabeled, but --label_nc is {opt.label_nc}; "
                f"pass --contain_dontcare_label with --label_nc {ADE_CLASSES}, or --label_nc {ADE_CLASSES + 1}"
            )
        if opt.phase not in SPLITS:
            raise OptionError(f"--phase {opt.phase!r} has no ADE20K split; choose one of: {', '.join(SPLITS)}")
        root = Path(opt.dataroot)
        if (root / "ADEChallengeData2016").is_dir():
            root = root / "ADEChallengeData2016"
        split = SPLITS[opt.phase]
        labels = list_image_files(root / "annotations" / split, what="label maps")
        image_dir = root / "images" / split
        images = list_image_files(image_dir) if opt.isTrain or image_dir.exists() else None
        return pair_files(labels, images, image_dir=image_dir)

    def remap_label(self, arr: np.ndarray) -> np.ndarray:
        """With don't care on: 0 -> 255 (don't care), k -> k-1; otherwise raw ids."""
        if not self.opt.contain_dontcare_label:
            return arr
        return np.where(arr == 0, DONTCARE_ID, arr - 1)
