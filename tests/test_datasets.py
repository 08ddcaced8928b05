"""Dataset modes: finding and pairing files, the sample dict, reproducible augmentation, one test per bad input."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from synth.core.errors import DataError, OptionError
from synth.data import create_dataset, instance_boundaries
from synth.data.datasets.base import LayoutDataset, Sample

SHARED = Path(__file__).resolve().parents[2] / "shared/data/cityscapes_samples"
W, H = 64, 32


def make_opt(root, **kw):
    base = dict(
        dataroot=str(root),
        phase="train",
        dataset_mode="pix2pixhd",
        label_nc=8,
        contain_dontcare_label=False,
        no_instance=False,
        resize_or_crop="none",
        loadSize=64,
        fineSize=32,
        no_flip=False,
        isTrain=True,
        seed=0,
        size_multiple=16,
        inst_dir=None,
    )
    base.update(kw)
    return SimpleNamespace(**base)


def _label(seed, w=W, h=H, high=8):
    return np.random.default_rng(seed).integers(0, high, (h, w), dtype=np.uint8)


def _inst(w=W, h=H):
    inst = np.full((h, w), 3, np.uint16)
    inst[h // 4 : h // 2, w // 4 : w // 2] = 26001
    return inst


def _photo(seed, w=W, h=H):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def make_pix2pixhd(root, names=("a", "b", "c"), phase="train", images=True, inst=True):
    for i, name in enumerate(names):
        _save(root / f"{phase}_label" / f"{name}.png", _label(i))
        if inst:
            _save(root / f"{phase}_inst" / f"{name}.png", _inst())
        if images:
            _save(root / f"{phase}_img" / f"{name}.jpg", _photo(i))
    return root


def _msg(info):
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# --- finding, pairing, the sample dict ---------------------------------------------------------------------


def test_pix2pixhd_sample_dict(tmp_path):
    ds = create_dataset(make_opt(make_pix2pixhd(tmp_path)))
    assert isinstance(ds, LayoutDataset) and len(ds) == 3 and ds.has_images
    assert [s.key for s in ds.samples] == ["a", "b", "c"]
    item = ds[1]
    assert set(item) == {"label", "inst", "image", "key", "label_path"}
    assert item["label"].shape == (1, H, W) and item["label"].dtype == torch.int64
    assert item["inst"].shape == (1, H, W) and item["inst"].dtype == torch.int64
    assert item["image"].shape == (3, H, W) and item["image"].dtype == torch.float32
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert item["key"] == "b" and item["label_path"] == str(tmp_path / "train_label" / "b.png")
    assert 0 <= int(item["label"].min()) and int(item["label"].max()) < 8
    assert set(item["inst"].unique().tolist()) == {3, 26001}


def test_pix2pixhd_values_unchanged_without_augmentation(tmp_path):
    opt = make_opt(make_pix2pixhd(tmp_path), isTrain=False)
    item = create_dataset(opt)[0]
    np.testing.assert_array_equal(item["label"][0].numpy(), _label(0))
    np.testing.assert_array_equal(item["inst"][0].numpy(), _inst())


def test_pix2pixhd_no_instance_and_label_only_inference(tmp_path):
    make_pix2pixhd(tmp_path, phase="test", images=False, inst=False)
    ds = create_dataset(make_opt(tmp_path, phase="test", isTrain=False, no_instance=True))
    assert not ds.has_images
    assert set(ds[0]) == {"label", "key", "label_path"}


def test_pix2pixhd_training_needs_images(tmp_path):
    make_pix2pixhd(tmp_path, images=False)
    with pytest.raises(DataError) as info:
        create_dataset(make_opt(tmp_path))
    assert str(tmp_path / "train_img") in _msg(info) and "folder not found" in _msg(info)


def test_cityscapes_layout(tmp_path):
    for city, n in (("aachen", 2), ("bremen", 1)):
        for k in range(n):
            stem = f"{city}_{k:06d}_000019"
            gt = tmp_path / "gtFine" / "train" / city
            _save(gt / f"{stem}_gtFine_labelIds.png", _label(k, high=34))
            _save(gt / f"{stem}_gtFine_instanceIds.png", _inst())
            _save(gt / f"{stem}_gtFine_color.png", _photo(k))
            _save(tmp_path / "leftImg8bit" / "train" / city / f"{stem}_leftImg8bit.png", _photo(k))
    ds = create_dataset(make_opt(tmp_path, dataset_mode="cityscapes", label_nc=35))
    assert [s.key for s in ds.samples] == ["aachen_000000_000019", "aachen_000001_000019", "bremen_000000_000019"]
    assert all(s.image.name.endswith("_leftImg8bit.png") for s in ds.samples)
    assert all(s.inst.name.endswith("_gtFine_instanceIds.png") for s in ds.samples)
    item = ds[2]
    assert item["image"].shape == (3, H, W) and item["inst"].shape == (1, H, W) and int(item["label"].max()) < 35


def test_pix2pixhd_feature_pngs_named_after_the_label_file(tmp_path):
    """pix2pixHD's precompute_feature_maps.py saves train_feat/<label file name>: --load_features finds those,
    pairs each with its own sample, and reads them back to [-1, 1]."""
    stems = ["aachen_000000_000019", "aachen_000001_000019"]
    for k, stem in enumerate(stems):
        _save(tmp_path / "train_label" / f"{stem}_gtFine_labelIds.png", _label(k))
        _save(tmp_path / "train_inst" / f"{stem}_gtFine_instanceIds.png", _inst())
        _save(tmp_path / "train_img" / f"{stem}_leftImg8bit.png", _photo(k))
        _save(tmp_path / "train_feat" / f"{stem}_gtFine_labelIds.png", np.full((H, W, 3), 255 * k, np.uint8))
    opt = make_opt(tmp_path, need_feature_maps=True, feat_num=3)
    ds = create_dataset(opt)
    assert [ds.feature_maps[s.key].name for s in ds.samples] == [f"{s}_gtFine_labelIds.png" for s in stems]
    assert torch.equal(ds[0]["feat"], torch.full((3, H, W), -1.0)) and torch.equal(ds[1]["feat"], torch.ones(3, H, W))
    (tmp_path / "train_feat" / f"{stems[1]}_gtFine_labelIds.png").unlink()
    with pytest.raises(DataError) as info:
        create_dataset(opt)
    assert _msg(info) == (
        f"{tmp_path / 'train_feat' / stems[1]}.npz: feature map not found "
        "(make the maps with synth-precompute-features --name RUN)"
    )


@pytest.mark.parametrize("nested", [True, False])
def test_ade20k_layout_and_dontcare_remap(tmp_path, nested):
    root = tmp_path / "ADEChallengeData2016" if nested else tmp_path
    raw = np.zeros((H, W), np.uint8)
    raw[:, W // 2 :] = 150
    raw[0, 0] = 1
    _save(root / "annotations" / "validation" / "ADE_val_00000001.png", raw)
    _save(root / "images" / "validation" / "ADE_val_00000001.jpg", _photo(0))
    opt = make_opt(
        tmp_path,
        dataset_mode="ade20k",
        phase="val",
        label_nc=150,
        contain_dontcare_label=True,
        no_instance=True,
        isTrain=False,
    )
    item = create_dataset(opt)[0]
    label = item["label"][0]
    assert int(label[0, 0]) == 0 and int(label[1, 0]) == 150 and int(label[0, W - 1]) == 149
    assert set(item) == {"label", "image", "key", "label_path"}


def test_ade20k_rejects_instances(tmp_path):
    with pytest.raises(OptionError, match="--no_instance"):
        create_dataset(make_opt(tmp_path, dataset_mode="ade20k", label_nc=150, contain_dontcare_label=True))


def test_labels_folder(tmp_path):
    _save(tmp_path / "labels" / "x.png", _label(0))
    _save(tmp_path / "insts" / "x.png", _inst())
    opt = make_opt(tmp_path / "labels", dataset_mode="labels", isTrain=False, inst_dir=str(tmp_path / "insts"))
    ds = create_dataset(opt)
    assert not ds.has_images and set(ds[0]) == {"label", "inst", "key", "label_path"}
    with pytest.raises(OptionError, match="--inst_dir"):
        create_dataset(make_opt(tmp_path / "labels", dataset_mode="labels", isTrain=False))
    ds = create_dataset(make_opt(tmp_path / "labels", dataset_mode="labels", isTrain=False, no_instance=True))
    assert set(ds[0]) == {"label", "key", "label_path"}


def test_dontcare_255_maps_to_label_nc(tmp_path):
    make_pix2pixhd(tmp_path, images=False, inst=False)
    arr = _label(0)
    arr[0, :5] = 255
    _save(tmp_path / "train_label" / "a.png", arr)
    opt = make_opt(tmp_path, isTrain=False, no_instance=True, contain_dontcare_label=True)
    label = create_dataset(opt)[0]["label"][0]
    assert label[0, :5].tolist() == [8] * 5 and int(label.max()) == 8


def test_custom_subclass_contract(tmp_path):
    path = _save(tmp_path / "one.png", _label(0))

    class OneFile(LayoutDataset):
        def find_samples(self):
            return [Sample("one", path, None, None)]

        def remap_label(self, arr):
            return arr // 2

    ds = OneFile(make_opt(tmp_path, no_instance=True, isTrain=False))
    assert len(ds) == 1 and not ds.has_images
    np.testing.assert_array_equal(ds[0]["label"][0].numpy(), _label(0) // 2)


# --- reproducible augmentation -------------------------------------------------------------------------------


def test_augmentation_reproducible_per_epoch(tmp_path):
    make_pix2pixhd(tmp_path)
    opt = make_opt(tmp_path, resize_or_crop="crop", fineSize=16, size_multiple=8)
    ds, twin = create_dataset(opt), create_dataset(opt)
    ds.set_epoch(3)
    twin.set_epoch(3)
    assert torch.equal(ds[0]["image"], twin[0]["image"]) and torch.equal(ds[0]["label"], twin[0]["label"])
    crops = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        crops.add(ds[0]["image"].numpy().tobytes())
    assert len(crops) > 1


# --- one test per bad input ----------------------------------------------------------------------------------


def test_missing_folder(tmp_path):
    with pytest.raises(DataError) as info:
        create_dataset(make_opt(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere" / "train_label") in _msg(info) and "folder not found" in _msg(info)


def test_empty_folder(tmp_path):
    (tmp_path / "train_label").mkdir()
    with pytest.raises(DataError) as info:
        create_dataset(make_opt(tmp_path))
    assert str(tmp_path / "train_label") in _msg(info) and "no label maps found" in _msg(info)


def test_image_without_label(tmp_path):
    make_pix2pixhd(tmp_path)
    extra = _save(tmp_path / "train_img" / "zzz.png", _photo(9))
    with pytest.raises(DataError) as info:
        create_dataset(make_opt(tmp_path))
    assert str(extra) in _msg(info) and "no label map" in _msg(info)


def test_label_without_image(tmp_path):
    make_pix2pixhd(tmp_path)
    (tmp_path / "train_img" / "b.jpg").unlink()
    with pytest.raises(DataError) as info:
        create_dataset(make_opt(tmp_path))
    assert str(tmp_path / "train_label" / "b.png") in _msg(info) and "no photo" in _msg(info)


def test_unreadable_label_png(tmp_path):
    make_pix2pixhd(tmp_path)
    bad = tmp_path / "train_label" / "a.png"
    bad.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(DataError) as info:
        create_dataset(make_opt(tmp_path))[0]
    assert str(bad) in _msg(info)


def test_truncated_image_png(tmp_path):
    make_pix2pixhd(tmp_path, images=False)
    good = _save(tmp_path / "train_img" / "a.png", _photo(0))
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    for name in ("b", "c"):
        _save(tmp_path / "train_img" / f"{name}.png", _photo(1))
    with pytest.raises(DataError) as info:
        create_dataset(make_opt(tmp_path))[0]
    assert str(good) in _msg(info)


def test_rgb_label_map(tmp_path):
    make_pix2pixhd(tmp_path)
    bad = _save(tmp_path / "train_label" / "a.png", _photo(0))
    with pytest.raises(DataError) as info:
        create_dataset(make_opt(tmp_path))[0]
    assert str(bad) in _msg(info) and "3 channels" in _msg(info)


def test_label_id_too_large(tmp_path):
    make_pix2pixhd(tmp_path)
    arr = _label(0)
    arr[3, 3] = 40
    bad = _save(tmp_path / "train_label" / "a.png", arr)
    with pytest.raises(DataError) as info:
        create_dataset(make_opt(tmp_path))[0]
    msg = _msg(info)
    assert str(bad) in msg and "40" in msg and "--label_nc is 8" in msg and "--label_nc 41" in msg


def test_image_label_size_mismatch(tmp_path):
    make_pix2pixhd(tmp_path)
    bad = _save(tmp_path / "train_img" / "a.jpg", _photo(0, w=W + 16))
    with pytest.raises(DataError) as info:
        create_dataset(make_opt(tmp_path))[0]
    msg = _msg(info)
    assert str(bad) in msg and str(tmp_path / "train_label" / "a.png") in msg
    assert f"{W + 16}x{H}" in msg and f"{W}x{H}" in msg


def test_instance_label_size_mismatch(tmp_path):
    make_pix2pixhd(tmp_path)
    bad = _save(tmp_path / "train_inst" / "a.png", _inst(h=H + 4))
    with pytest.raises(DataError) as info:
        create_dataset(make_opt(tmp_path))[0]
    msg = _msg(info)
    assert str(bad) in msg and str(tmp_path / "train_label" / "a.png") in msg and f"{W}x{H + 4}" in msg


def test_missing_instance_map(tmp_path):
    make_pix2pixhd(tmp_path)
    (tmp_path / "train_inst" / "c.png").unlink()
    with pytest.raises(DataError) as info:
        create_dataset(make_opt(tmp_path))
    msg = _msg(info)
    assert str(tmp_path / "train_label" / "c.png") in msg and "--no_instance" in msg


def test_size_not_divisible(tmp_path):
    make_pix2pixhd(tmp_path)
    opt = make_opt(tmp_path, resize_or_crop="scale_width", loadSize=40)
    with pytest.raises(OptionError) as info:
        create_dataset(opt)[0]
    msg = _msg(info)
    assert str(tmp_path / "train_label" / "a.png") in msg and "40x20" in msg and "16" in msg
    assert "--loadSize" in msg


# --- real data -----------------------------------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")
def test_real_cityscapes_samples():
    opt = make_opt(SHARED, label_nc=35, resize_or_crop="scale_width", loadSize=256)
    ds = create_dataset(opt)
    assert len(ds) == 8 and ds.has_images
    item = ds[0]
    assert item["label"].shape == (1, 128, 256) and item["inst"].shape == (1, 128, 256)
    assert item["image"].shape == (3, 128, 256)
    assert 0 <= int(item["label"].min()) and int(item["label"].max()) < 35
    assert -1 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    edges = instance_boundaries(item["inst"][None])
    assert edges.shape == (1, 1, 128, 256)
    assert 0.01 < float(edges.mean()) < 0.5
