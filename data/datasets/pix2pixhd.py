"""pix2pixHD's folder layout: ``{dataroot}/{phase}_label``, ``{phase}_inst`` and ``{phase}_img``."""

from __future__ import annotations

from pathlib import Path

from synth.data.datasets.base import LayoutDataset, Sample, list_image_files, pair_files
from synth.data.registry import DATASETS

NO_INSTANCE_HINT = " (pass --no_instance to go without instance maps)"


@DATASETS.register("pix2pixhd")
class Pix2PixHDDataset(LayoutDataset):
    """Flat folders paired by file name; photos are required for training and optional for inference."""

    def find_samples(self) -> list[Sample]:
        opt = self.opt
        root, phase = Path(opt.dataroot), opt.phase
        labels = list_image_files(root / f"{phase}_label", what="label maps")
        inst_dir = None if opt.no_instance else root / f"{phase}_inst"
        insts = list_image_files(inst_dir, hint=NO_INSTANCE_HINT) if inst_dir is not None else None
        image_dir = root / f"{phase}_img"
        images = list_image_files(image_dir) if opt.isTrain or image_dir.exists() else None
        return pair_files(labels, images, insts, image_dir=image_dir, inst_dir=inst_dir)
