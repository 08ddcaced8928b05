"""A plain folder of label maps (``--dataroot``), instance maps from ``--inst_dir``; no photos, inference only."""

from __future__ import annotations

from pathlib import Path

from synth.core.errors import OptionError
from synth.data.datasets.base import LayoutDataset, Sample, list_image_files, pair_files
from synth.data.registry import DATASETS


@DATASETS.register("labels")
class LabelFolderDataset(LayoutDataset):
    """Synthesise from label maps alone, e.g. ones drawn by hand or produced by another model."""

    def find_samples(self) -> list[Sample]:
        opt = self.opt
        if opt.isTrain:
            raise OptionError("dataset mode 'labels' has no photos to train on; use it for inference only")
        inst_dir = getattr(opt, "inst_dir", None)
        if not opt.no_instance and inst_dir is None:
            raise OptionError("dataset mode 'labels' needs --inst_dir with instance maps, or pass --no_instance")
        labels = list_image_files(Path(opt.dataroot), what="label maps")
        insts = list_image_files(Path(inst_dir)) if not opt.no_instance else None
        return pair_files(labels, None, insts, inst_dir=Path(inst_dir) if inst_dir is not None else None)
