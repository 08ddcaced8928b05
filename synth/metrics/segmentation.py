"""Segmentation scores of synthesized images: a confusion matrix with an ignore label, per-class IoU, mIoU and
pixel accuracy, and the label-id conventions of the published protocols.

Conventions (the same as cityscapesScripts' ``evalPixelLevelSemanticLabeling`` and fyu/drn's ``segment.py``):

- rows of the matrix are ground-truth classes, columns predicted classes;
- pixels whose ground truth is the ignore label (255, "void") are left out of the matrix;
- a prediction outside ``0..C-1`` on a valid pixel counts as a miss of the ground-truth class (a false negative
  for that class, a false positive for none);
- IoU = TP / (TP + FP + FN); a class that appears neither in the ground truth nor in the predictions has no IoU
  (NaN) and is left out of the mean, as cityscapesScripts' ``getScoreAverage`` does.

Pixel accuracy needs a choice about void pixels, and published numbers differ by about 10 points (the share of
void pixels in Cityscapes) over it: ``void="exclude"`` (default; correct / non-void pixels, as fyu/drn's
``accuracy`` and CSAIL's ``pixel_acc``) or ``void="include"`` (correct / all pixels: void pixels count as wrong).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from synth.core.errors import OptionError

IGNORE_INDEX = 255
CITYSCAPES_CLASSES = 19
ADE20K_CLASSES = 150
VoidMode = Literal["exclude", "include"]
VOID_MODES: tuple[str, ...] = ("exclude", "include")


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class ConfusionMatrix:
    """Accumulates ``matrix[gt, pred]`` pixel counts over batches of integer maps of any (equal) shape."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise OptionError(f"a confusion matrix needs at least one class, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        # the last column counts valid pixels predicted as something outside 0..C-1
        self._counts = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
        self.void_pixels = 0

    def update(self, pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> None:
        """Add one prediction / ground-truth pair (or a batch of them: any equal shapes)."""
        pred_np, target_np = _as_numpy(pred), _as_numpy(target)
        if pred_np.shape != target_np.shape:
            raise ValueError(f"prediction shape {pred_np.shape} differs from ground truth shape {target_np.shape}")
        c = self.num_classes
        gt = target_np.reshape(-1).astype(np.int64)
        pr = pred_np.reshape(-1).astype(np.int64)
        valid = (gt >= 0) & (gt < c)
        # pixels with any other ground truth than 0..C-1 are void (ignore_index and stray ids alike)
        self.void_pixels += int(gt.size - valid.sum())
        gt, pr = gt[valid], pr[valid]
        pr = np.where((pr >= 0) & (pr < c), pr, c)
        self._counts += np.bincount(gt * (c + 1) + pr, minlength=c * (c + 1)).reshape(c, c + 1)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add the counts of another matrix of the same size."""
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge confusion matrices of different sizes")
        self._counts += other._counts
        self.void_pixels += other.void_pixels

    @property
    def matrix(self) -> np.ndarray:
        """``[C, C]`` int64 counts: rows ground truth, columns prediction (void ground truth left out)."""
        return self._counts[:, : self.num_classes].copy()

    @property
    def valid_pixels(self) -> int:
        """Pixels whose ground truth is one of the classes."""
        return int(self._counts.sum())

    def iou(self) -> np.ndarray:
        """Per-class IoU (float64); NaN for a class absent from both ground truth and predictions."""
        tp = np.diag(self._counts[:, : self.num_classes]).astype(np.float64)
        gt_total = self._counts.sum(axis=1).astype(np.float64)  # TP + FN (misses into stray ids included)
        pred_total = self._counts[:, : self.num_classes].sum(axis=0).astype(np.float64)  # TP + FP
        union = gt_total + pred_total - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)

    def mean_iou(self) -> float:
        """Mean of the defined per-class IoUs (NaN when none is defined)."""
        ious = self.iou()
        return float(np.nanmean(ious)) if np.isfinite(ious).any() else float("nan")

    def pixel_accuracy(self, void: VoidMode = "exclude") -> float:
        """Correct pixels / non-void pixels (``exclude``) or / all pixels (``include``: void counts as wrong)."""
        if void not in VOID_MODES:
            raise OptionError(f"void handling must be one of {', '.join(VOID_MODES)}, not {void!r}")
        correct = float(np.trace(self._counts[:, : self.num_classes]))
        total = self.valid_pixels + (self.void_pixels if void == "include" else 0)
        return correct / total if total else float("nan")

    def class_accuracy(self) -> np.ndarray:
        """Per-class recall TP / (TP + FN); NaN for classes absent from the ground truth."""
        tp = np.diag(self._counts[:, : self.num_classes]).astype(np.float64)
        gt_total = self._counts.sum(axis=1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gt_total > 0, tp / np.where(gt_total > 0, gt_total, 1.0), np.nan)


def segmentation_scores(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    num_classes: int,
    *,
    ignore_index: int = IGNORE_INDEX,
    void: VoidMode = "exclude",
) -> dict[str, float]:
    """``{"mIoU", "Acc"}`` (fractions in [0, 1]) of one prediction array against its ground truth."""
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(pred, target)
    return {"mIoU": cm.mean_iou(), "Acc": cm.pixel_accuracy(void)}


def cityscapes_train_id_lut() -> np.ndarray:
    """A 256-entry uint8 table: Cityscapes labelId -> trainId (0..18), every other id -> 255.

    Built from the official label table of the cityscapesScripts package (``cityscapesscripts.helpers.labels``).
    """
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label in labels:
        if 0 <= label.id < 256 and 0 <= label.trainId < CITYSCAPES_CLASSES and not label.ignoreInEval:
            lut[label.id] = label.trainId
    return lut


def cityscapes_train_id_to_label_id() -> np.ndarray:
    """A 256-entry uint8 table: trainId (0..18) -> Cityscapes labelId; 255 -> 0 ('unlabeled')."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.zeros(256, dtype=np.uint8)
    for label in labels:
        if 0 <= label.trainId < CITYSCAPES_CLASSES and not label.ignoreInEval:
            lut[label.trainId] = label.id
    return lut


def cityscapes_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Cityscapes ``*_gtFine_labelIds`` values -> the 19 trainIds, void = 255."""
    return cityscapes_train_id_lut()[np.asarray(label_ids).astype(np.uint8)]


def ade20k_to_train_ids(raw: np.ndarray) -> np.ndarray:
    """ADE20K SceneParsing annotation values (0 = unlabeled, 1..150) -> 0..149, unlabeled = 255."""
    raw = np.asarray(raw).astype(np.int64)
    out = np.where((raw >= 1) & (raw <= ADE20K_CLASSES), raw - 1, IGNORE_INDEX)
    return out.astype(np.uint8)


#: dataset name -> (number of classes, raw label map -> train ids); ``trainids``: maps already hold 0..C-1 / 255.
DATASET_CLASSES: dict[str, int] = {"cityscapes": CITYSCAPES_CLASSES, "ade20k": ADE20K_CLASSES}


def to_train_ids(dataset: str, raw: np.ndarray) -> np.ndarray:
    """Map a raw label map of ``dataset`` (cityscapes, ade20k or trainids) to evaluation ids with void = 255."""
    if dataset == "cityscapes":
        return cityscapes_to_train_ids(raw)
    if dataset == "ade20k":
        return ade20k_to_train_ids(raw)
    if dataset == "trainids":
        return np.asarray(raw).astype(np.uint8)
    raise OptionError(f"unknown evaluation dataset '{dataset}'; choose one of: cityscapes, ade20k, trainids")
