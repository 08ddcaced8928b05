"""pix2pixHD's 1024p texture pipeline: synth-precompute-features writes one map per training image (E's per-instance
averages), training with --load_features reads them instead of an encoder, and test time samples clusters."""

import shutil

import numpy as np
import pytest
import torch

from synth.core.errors import DataError
from synth.data import create_dataset
from synth.data.feature_maps import read_feature_map, write_feature_map
from synth.data.transforms import apply_to_label, choose_params
from tests.conftest import tiny_flags

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline(demo_root, tmp_path_factory):
    """A copy of the demo data, a tiny --instance_feat run 'feat' (ngf 8, the "512p" run), its precomputed maps,
    and a --load_features local-enhancer run 'hd' started from it (the "1024p" run)."""
    from synth.commands.precompute_features import main as precompute
    from synth.options import parse_train_options
    from synth.trainer import Trainer

    root = tmp_path_factory.mktemp("data") / "demo"
    shutil.copytree(demo_root, root)
    runs = tmp_path_factory.mktemp("runs")
    feat_flags = tiny_flags(root, runs, "feat") + [
        "--ngf",
        "8",
        "--instance_feat",
        "--nef",
        "4",
        "--n_downsample_E",
        "2",
        "--max_iters",
        "2",
    ]
    Trainer(parse_train_options(feat_flags)).train()
    common = ["--checkpoints_dir", str(runs), "--device", "cpu", "--no_progress"]
    assert precompute(["--name", "feat", *common]) == 0
    hd_flags = tiny_flags(root, runs, "hd") + [
        "--netG",
        "local",
        "--load_pretrain",
        str(runs / "feat"),
        "--niter_fix_global",
        "1",
        "--instance_feat",
        "--load_features",
        "--max_iters",
        "2",
    ]
    trainer = Trainer(parse_train_options(hd_flags))
    trainer.train()
    return root, runs, common, hd_flags, trainer


def test_one_map_per_training_image_equal_to_the_pooled_encoder_output(pipeline):
    from synth.inference import load_generator
    from synth.options import parse_test_options

    root, runs, common, _, _ = pipeline
    keys = sorted(p.stem for p in (root / "train_label").iterdir())
    assert sorted(p.stem for p in (root / "train_feat").glob("*.npz")) == keys
    opt = parse_test_options(["--name", "feat", "--phase", "train", *common])
    model = load_generator(opt)
    opt.size_multiple = 4
    dataset = create_dataset(opt)
    for index in (0, len(dataset) - 1):
        item = dataset[index]
        with torch.no_grad():
            pooled = model.encode_features(item["image"][None], item["inst"][None])[0].numpy()
        saved = np.load(root / "train_feat" / f"{item['key']}.npz")["feat"]
        assert saved.dtype == np.float32 and saved.shape == (3, 32, 32)
        np.testing.assert_allclose(saved, pooled, atol=1e-6)
        inst = item["inst"][0].numpy()
        for segment in np.unique(inst):  # one vector per instance
            inside = saved[:, inst == segment]
            assert (inside == inside[:, :1]).all()


def test_load_features_trains_g_on_the_maps_without_an_encoder(pipeline):
    root, runs, _, hd_flags, trainer = pipeline
    model = trainer.model
    assert not hasattr(model, "netE") and set(model.networks()) == {"G", "D"}
    assert set(torch.load(runs / "hd" / "latest.pt", weights_only=True)["nets"]) == {"G", "D"}
    item = trainer.dataset[0] if hasattr(trainer, "dataset") else create_dataset(trainer.opt)[0]
    # the map is flipped / cropped with the label: still one vector per instance of the transformed instance map
    inst, feat = item["inst"][0], item["feat"]
    for segment in inst.unique():
        inside = feat[:, inst == segment]
        assert torch.equal(inside, inside[:, :1].expand_as(inside))

    def generator_features(dataset_item):
        batch = {k: v[None] for k, v in dataset_item.items() if isinstance(v, torch.Tensor)}
        semantics, real = model.encode_input(batch)
        return model.generator_input(semantics, model.training_features(batch, real))[:, semantics.shape[1] :]

    before = generator_features(item)
    torch.testing.assert_close(before[0], item["feat"])
    path = root / "train_feat" / f"{item['key']}.npz"
    original = np.load(path)["feat"]
    try:
        write_feature_map(path, original + 0.5)
        after = generator_features(create_dataset(trainer.opt)[0])
        torch.testing.assert_close(after, before + 0.5)
    finally:
        write_feature_map(path, original)


def test_clusters_from_the_maps_and_synthesis_with_them(pipeline, tmp_path, capsys):
    from synth.commands.encode_features import main as encode_features
    from synth.commands.test import main as synth_test
    from synth.features import FeatureClusters

    _, runs, common, _, _ = pipeline
    assert encode_features(["--name", "hd", "--n_clusters", "2", *common]) == 0, capsys.readouterr().err
    clusters = FeatureClusters.load(runs / "hd" / "features_clustered_002.npz")
    assert clusters.feat_num == 3 and clusters.centers
    assert synth_test(["--name", "hd", "--instance_feat", "--results_dir", str(tmp_path), *common]) == 0
    assert len(list((tmp_path / "hd" / "test_latest" / "images").glob("*_synthesized_image.png"))) == 3
    capsys.readouterr()
    assert synth_test(["--name", "hd", "--use_encoded_image", "--results_dir", str(tmp_path), *common]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--load_features" in err and "no encoder" in err


def test_missing_or_bad_maps_are_one_line_naming_the_file(pipeline, tmp_path, capsys):
    from synth.commands.train import main as synth_train

    root, runs, _, hd_flags, trainer = pipeline
    folder = root / "train_feat"
    key = sorted(p.stem for p in folder.glob("*.npz"))[1]
    path = folder / f"{key}.npz"
    saved = path.read_bytes()
    try:
        path.unlink()
        flags = [f if f != str(runs) else str(tmp_path) for f in hd_flags]
        assert synth_train(flags) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(path) in err and "synth-precompute-features" in err
        for content, message in [(b"not a zip", "not a feature map file"), (None, "expected [3, H, W]")]:
            if content is None:
                write_feature_map(path, np.zeros((2, 32, 32), np.float32))
            else:
                path.write_bytes(content)
            with pytest.raises(DataError) as info:
                read_feature_map(path, 3, (32, 32))
            assert str(path) in str(info.value) and message in str(info.value) and "\n" not in str(info.value)
        write_feature_map(path, np.zeros((3, 16, 32), np.float32))
        with pytest.raises(DataError, match="32x16, its label map 32x32"):
            read_feature_map(path, 3, (32, 32))
    finally:
        path.write_bytes(saved)


def test_pix2pixhd_png_maps_are_read_too(tmp_path):
    from PIL import Image

    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, 3:] = (255, 0, 127)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    feat = read_feature_map(tmp_path / "a.png", 3, (4, 6))
    assert feat.shape == (4, 6, 3)
    np.testing.assert_allclose(feat[0, 5], [1.0, -1.0, 127 / 127.5 - 1], atol=1e-6)
    np.testing.assert_allclose(feat[0, 0], [-1.0, -1.0, -1.0])


def test_feature_maps_are_cropped_and_flipped_with_the_labels():
    import argparse
    import random

    opt = argparse.Namespace(
        resize_or_crop="scale_width_and_crop", loadSize=12, fineSize=4, isTrain=True, no_flip=False, size_multiple=4
    )
    label = np.arange(6 * 8).reshape(6, 8)
    feat = np.stack([label * 1.0, -label * 1.0], axis=-1).astype(np.float32)
    for seed in range(6):
        params = choose_params(opt, (8, 6), random.Random(seed))
        ids, values = apply_to_label(label, params), apply_to_label(feat, params)
        assert values.shape == (4, 4, 2)
        np.testing.assert_array_equal(values[..., 0], ids)
        np.testing.assert_array_equal(values[..., 1], -ids)
