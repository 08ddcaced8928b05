"""The official Cityscapes layout: ``leftImg8bit/{phase}/{city}/`` photos and ``gtFine/{phase}/{city}/`` maps."""

from __future__ import annotations

from pathlib import Path

from synth.data.datasets.base import LayoutDataset, Sample, list_image_files, pair_files
from synth.data.registry import DATASETS


@DATASETS.register("cityscapes")
class CityscapesDataset(LayoutDataset):
    """``*_gtFine_labelIds.png`` (35 classes, use --label_nc 35), ``*_gtFine_instanceIds.png``, ``*_leftImg8bit.png``;
    photos are required for training and optional for inference."""

    def find_samples(self) -> list[Sample]:
        opt = self.opt
        root, phase = Path(opt.dataroot), opt.phase
        gt_dir = root / "gtFine" / phase
        labels = list_image_files(gt_dir, suffix="_gtFine_labelIds", recursive=True, what="label maps")
        insts = None
        if not opt.no_instance:
            insts = list_image_files(gt_dir, suffix="_gtFine_instanceIds", recursive=True)
        image_dir = root / "leftImg8bit" / phase
        images = None
        if opt.isTrain or image_dir.exists():
            images = list_image_files(image_dir, suffix="_leftImg8bit", recursive=True)
        return pair_files(labels, images, insts, image_dir=image_dir, inst_dir=gt_dir)
