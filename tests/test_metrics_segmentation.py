"""Confusion-matrix mIoU and pixel accuracy: perfect predictions, hand-computed cases, void handling, label-id
mappings, and equality with cityscapesScripts' own evaluation (evalPixelLevelSemanticLabeling)."""

import numpy as np
import pytest
import torch
from PIL import Image

from synth.core.errors import OptionError
from synth.metrics.segmentation import (
    ConfusionMatrix,
    ade20k_to_train_ids,
    cityscapes_to_train_ids,
    cityscapes_train_id_lut,
    cityscapes_train_id_to_label_id,
    segmentation_scores,
    to_train_ids,
)


def test_ground_truth_against_itself_scores_one():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 19, (4, 32, 64)).astype(np.uint8)
    gt[:, :5] = 255  # void rows
    scores = segmentation_scores(gt, gt, 19)
    assert scores == {"mIoU": 1.0, "Acc": 1.0}
    cm = ConfusionMatrix(19)
    cm.update(torch.from_numpy(gt), torch.from_numpy(gt))
    assert cm.pixel_accuracy("include") == pytest.approx(27 / 32)
    assert cm.void_pixels == 4 * 5 * 64


def test_hand_computed_scores():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 7]])  # 7: outside 0..2 on a void pixel -> ignored
    cm = ConfusionMatrix(3)
    cm.update(pred, gt)
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    iou = cm.iou()
    assert iou.tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert cm.mean_iou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)
    assert cm.pixel_accuracy("include") == pytest.approx(4 / 8)
    with pytest.raises(OptionError):
        cm.pixel_accuracy("sometimes")


def test_absent_classes_are_left_out_and_stray_predictions_are_misses():
    gt = np.array([0, 0, 1, 1])
    pred = np.array([0, 9, 1, 1])  # 9 is not a class: a miss for class 0, a false positive for no class
    cm = ConfusionMatrix(4)
    cm.update(pred, gt)
    iou = cm.iou()
    assert iou[0] == pytest.approx(1 / 2) and iou[1] == 1.0
    assert np.isnan(iou[2]) and np.isnan(iou[3])
    assert cm.mean_iou() == pytest.approx(0.75)
    other = ConfusionMatrix(4)
    other.update(gt, gt)
    cm.merge(other)
    assert cm.valid_pixels == 8


def test_cityscapes_and_ade20k_id_mappings():
    lut = cityscapes_train_id_lut()
    assert lut[7] == 0 and lut[8] == 1 and lut[26] == 13 and lut[33] == 18
    assert lut[0] == lut[6] == lut[9] == lut[29] == lut[30] == lut[255] == 255
    assert int((lut != 255).sum()) == 19
    back = cityscapes_train_id_to_label_id()
    assert all(lut[back[t]] == t for t in range(19))
    assert cityscapes_to_train_ids(np.array([[7, 0], [24, 33]])).tolist() == [[0, 255], [11, 18]]
    assert ade20k_to_train_ids(np.array([0, 1, 150, 151])).tolist() == [255, 0, 149, 255]
    assert to_train_ids("trainids", np.array([3, 255])).tolist() == [3, 255]
    with pytest.raises(OptionError):
        to_train_ids("coco", np.zeros(2))


def _cityscapes_reference(tmp_path, gts, preds, monkeypatch):
    """Run cityscapesScripts' evaluateImgLists on label-id PNGs; returns its result dict."""
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as ev

    gt_files, pred_files = [], []
    for i, (gt, pred) in enumerate(zip(gts, preds, strict=True)):
        g = tmp_path / f"city_{i:06d}_000019_gtFine_labelIds.png"
        p = tmp_path / f"city_{i:06d}_000019_pred.png"
        Image.fromarray(gt).save(g)
        Image.fromarray(pred).save(p)
        gt_files.append(str(g))
        pred_files.append(str(p))
    for name, value in (("quiet", True), ("JSONOutput", False), ("evalInstLevelScore", False),
                        ("evalPixelAccuracy", False)):
        monkeypatch.setattr(ev.args, name, value)
    return ev.evaluateImgLists(pred_files, gt_files, ev.args)


def test_scores_equal_cityscapesscripts_on_perturbed_predictions(tmp_path, monkeypatch):
    from cityscapesscripts.helpers.labels import id2label

    rng = np.random.default_rng(7)
    to_label = cityscapes_train_id_to_label_id()
    gts, preds = [], []
    cm = ConfusionMatrix(19)
    for _ in range(3):
        # blocky ground truth over all 34 label ids (void ones included)
        gt = np.kron(rng.integers(0, 34, (6, 8)), np.ones((8, 8), dtype=np.int64)).astype(np.uint8)
        train = cityscapes_to_train_ids(gt)
        pred = np.where(train == 255, rng.integers(0, 19, train.shape), train)
        flip = rng.random(train.shape) < 0.3
        pred = np.where(flip, rng.integers(0, 19, train.shape), pred).astype(np.uint8)
        gts.append(gt)
        preds.append(to_label[pred])
        cm.update(pred, train)
    ref = _cityscapes_reference(tmp_path, gts, preds, monkeypatch)

    assert cm.mean_iou() == pytest.approx(ref["averageScoreClasses"], rel=1e-12)
    lut = cityscapes_train_id_lut()
    ours = cm.iou()
    for name, score in ref["classScores"].items():
        label_id = next(i for i, lab in id2label.items() if lab.name == name and i >= 0)
        if lut[label_id] == 255:
            assert np.isnan(score)
        elif np.isnan(score):
            assert np.isnan(ours[lut[label_id]])
        else:
            assert ours[lut[label_id]] == pytest.approx(score, rel=1e-12)
    # pixel accuracy from its confusion matrix: rows of non-ignored labels only (void excluded)
    conf = np.array(ref["confMatrix"], dtype=np.int64)
    kept = [i for i in range(conf.shape[0]) if i in id2label and not id2label[i].ignoreInEval]
    diag = conf[kept, kept]  # the diagonal entries of the kept labels
    assert cm.pixel_accuracy("exclude") == pytest.approx(diag.sum() / conf[kept].sum(), rel=1e-12)
    assert cm.pixel_accuracy("include") == pytest.approx(diag.sum() / conf.sum(), rel=1e-12)
    # and the perfect prediction scores 1.0 there as well
    (tmp_path / "p").mkdir()
    perfect = _cityscapes_reference(tmp_path / "p", gts, [to_label[cityscapes_to_train_ids(g)] for g in gts],
                                    monkeypatch)
    assert perfect["averageScoreClasses"] == pytest.approx(1.0)
