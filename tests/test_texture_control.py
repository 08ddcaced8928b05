"""Texture control: instance-wise pooling, the feature encoder, per-class clusters, sampling and instance edits."""

import numpy as np
import pytest
import torch

from synth.core.errors import OptionError, SynthError
from synth.features import (
    FeatureClusters,
    check_cluster_choices,
    fit_clusters,
    paint_features,
    parse_pairs,
    sample_segment_features,
    segment_classes,
)
from synth.models.networks import InstanceEncoder
from synth.models.networks.instance_pool import instance_average_pool


def two_instance_map() -> torch.Tensor:
    ids = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    ids[..., 2:6, 1:4] = 26001
    ids[..., 0:3, 5:8] = 7
    return ids


def test_pooling_is_constant_inside_each_instance_and_equals_the_mean():
    ids = two_instance_map()
    features = torch.randn(1, 3, 8, 8)
    pooled = instance_average_pool(features, ids)
    for segment in ids.unique():
        mask = (ids == segment).expand_as(features)
        inside = pooled[mask].view(3, -1)
        expected = features[mask].view(3, -1).mean(1, keepdim=True)
        torch.testing.assert_close(inside, expected.expand_as(inside))


def test_pooling_keeps_images_of_a_batch_apart_and_passes_gradients():
    ids = torch.cat([two_instance_map(), two_instance_map()])
    features = torch.randn(2, 2, 8, 8, requires_grad=True)
    pooled = instance_average_pool(features, ids)
    mask = ids[0, 0] == 26001
    assert not torch.allclose(pooled[0, :, mask], pooled[1, :, mask])  # same id, other image, other mean
    pooled[0, 0][mask].sum().backward()
    grad = features.grad[0, 0]
    # d(sum of the instance's pooled values)/d(feature) = 1 for each pixel of the instance, 0 elsewhere
    torch.testing.assert_close(grad[mask], torch.ones(int(mask.sum())))
    assert grad[~mask].abs().sum() == 0 and features.grad[1].abs().sum() == 0


def test_encoder_matches_pix2pixhd_size_and_separates_textures():
    with torch.device("meta"):
        assert sum(p.numel() for p in InstanceEncoder(3, 3, 16, 4).parameters()) == 788_803  # pix2pixHD's E
    torch.manual_seed(0)
    encoder = InstanceEncoder(3, 3, nef=4, n_downsampling=2).eval()
    ids = torch.zeros(1, 1, 16, 16, dtype=torch.long)
    ids[..., :, 8:] = 1
    image = torch.zeros(1, 3, 16, 16)
    image[:, 0, :, :8] = 1.0  # red left half
    image[:, 2, :, 8:] = 1.0  # blue right half
    with torch.no_grad():
        codes = encoder(image, ids)
    assert codes.shape == (1, 3, 16, 16)
    assert torch.allclose(codes[..., :8], codes[..., :1, :1].expand(1, 3, 16, 8))
    assert not torch.allclose(codes[..., 0, 0], codes[..., 0, 15])


def test_kmeans_is_reproducible_and_the_file_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    features = {2: rng.normal(size=(40, 3)), 7: rng.normal(size=(5, 3)) + 4}
    first, second = fit_clusters(features, 10, seed=3), fit_clusters(features, 10, seed=3)
    assert first.centers.keys() == {2, 7}
    assert first.cluster_count(2) == 10 and first.cluster_count(7) == 5  # never more centres than instances
    for label in first.centers:
        np.testing.assert_array_equal(first.centers[label], second.centers[label])
    loaded = FeatureClusters.load(first.save(tmp_path / "clusters.npz"))
    assert loaded.feat_num == 3
    for label in first.centers:
        np.testing.assert_array_equal(loaded.centers[label], first.centers[label])
    with np.load(tmp_path / "clusters.npz", allow_pickle=False) as data:  # plain arrays, nothing pickled
        assert set(data.files) == {"feat_num", "classes", "centers_2", "centers_7"}


def test_missing_and_foreign_cluster_files(tmp_path):
    with pytest.raises(SynthError, match="feature cluster file not found.*synth-encode-features"):
        FeatureClusters.load(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(SynthError, match="not a feature cluster file"):
        FeatureClusters.load(tmp_path / "bad.npz")


def test_segment_classes_sampling_and_painting():
    label = np.array([[1, 1, 2], [1, 2, 2], [3, 3, 3]])
    segments = np.array([[5, 5, 6], [5, 6, 6], [7, 7, 6]])
    assert segment_classes(label, segments) == {5: 1, 6: 2, 7: 3}  # majority vote under each segment
    clusters = FeatureClusters(2, {1: np.array([[0.0, 1.0], [2.0, 3.0]]), 2: np.array([[9.0, 9.0]])})
    table = sample_segment_features({5: 1, 6: 2, 7: 3}, clusters, {1: 1}, np.random.default_rng(0))
    assert table.keys() == {5, 6}  # class 3 has no clusters: its features stay zero
    np.testing.assert_array_equal(table[5], [2.0, 3.0])
    painted = paint_features(segments, table, 2)
    assert painted.shape == (2, 3, 3)
    np.testing.assert_array_equal(painted[:, 0, 0], [2.0, 3.0])
    np.testing.assert_array_equal(painted[:, 2, 0], [0.0, 0.0])
    np.testing.assert_array_equal(painted[:, 1, 1], [9.0, 9.0])


def test_sampling_is_reproducible_with_a_seed():
    clusters = FeatureClusters(1, {1: np.arange(10, dtype=np.float32)[:, None]})
    classes = {i: 1 for i in range(20)}
    a = sample_segment_features(classes, clusters, {}, np.random.default_rng(4))
    b = sample_segment_features(classes, clusters, {}, np.random.default_rng(4))
    assert all(np.array_equal(a[k], b[k]) for k in a) and len({float(v[0]) for v in a.values()}) > 1


def test_bad_cluster_choices():
    clusters = FeatureClusters(1, {1: np.zeros((3, 1))})
    with pytest.raises(OptionError, match="cluster 3 does not exist for class 1: it has 3 clusters"):
        check_cluster_choices({1: 3}, clusters, 5)
    with pytest.raises(OptionError, match="class 9 is not a class of this model"):
        check_cluster_choices({9: 0}, clusters, 5)
    with pytest.raises(OptionError, match="KEY:VALUE"):
        parse_pairs(["1-2"], "--cluster_choice")


# ----- the commands on a tiny feature-conditioned model -------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_feature_run(demo_root, tmp_path_factory):
    """A tiny --instance_feat model trained for 2 iterations, and its clusters (3 per class)."""
    from synth.commands.encode_features import main as encode_features_main
    from synth.options import parse_train_options
    from synth.trainer import Trainer
    from tests.conftest import tiny_flags

    run_dir = tmp_path_factory.mktemp("feat")
    flags = tiny_flags(demo_root, run_dir) + ["--instance_feat", "--nef", "4", "--n_downsample_E", "2",
                                              "--max_iters", "2"]
    Trainer(parse_train_options(flags)).train()
    common = ["--name", "tiny", "--checkpoints_dir", str(run_dir), "--device", "cpu", "--no_progress"]
    assert encode_features_main(common + ["--n_clusters", "3"]) == 0
    return run_dir, common


@pytest.mark.slow
def test_encode_features_writes_clusters_per_class(tiny_feature_run):
    run_dir, _ = tiny_feature_run
    clusters = FeatureClusters.load(run_dir / "tiny" / "features_clustered_003.npz")
    assert clusters.feat_num == 3
    assert set(clusters.centers) <= set(range(5)) and all(len(c) <= 3 for c in clusters.centers.values())


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--use_encoded_image"], ["--cluster_choice", "2:0", "3:1"]])
def test_inference_with_features(tiny_feature_run, tmp_path, mode, capsys):
    from synth.commands.test import main as synth_test

    _, common = tiny_feature_run
    assert synth_test(common + ["--results_dir", str(tmp_path)] + mode) == 0, capsys.readouterr().err
    assert len(list((tmp_path / "tiny" / "test_latest" / "images").glob("*_synthesized_image.png"))) == 3


def edit(common, demo_root, tmp_path, *extra):
    from synth.commands.edit import main as edit_main

    return edit_main(common + ["--label", str(demo_root / "test_label" / "demo_00000.png"),
                               "--inst", str(demo_root / "test_inst" / "demo_00000.png"), "--out", str(tmp_path),
                               *extra])


def first_object(demo_root) -> dict:
    from synth.data.demo import load_demo_metadata

    instances = load_demo_metadata(demo_root)["images"]["test/demo_00000"]["instances"]
    return next(i for i in instances if i["class"] >= 2)


@pytest.mark.slow
def test_edit_command_writes_the_side_by_side_picture(tiny_feature_run, demo_root, tmp_path, capsys):
    _, common = tiny_feature_run
    obj = first_object(demo_root)
    assert edit(common, demo_root, tmp_path, "--set_cluster", f"{obj['id']}:1", "--set_class", "1:0",
                "--class_cluster", "4:0") == 0, capsys.readouterr().err
    strip = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(tmp_path / "demo_00000_side_by_side.png"))
    assert strip.shape == (32, 4 * 32, 3)
    assert (tmp_path / "demo_00000_original.png").exists() and (tmp_path / "demo_00000_edited.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "request_flags, message",
    [
        (["--set_cluster", "4242:0"], "instance 4242 is not in the map"),
        (["--set_class", "OBJ:7"], "class 7 is out of range"),
        (["--set_cluster", "OBJ:3"], "cluster 3 does not exist"),
        (["--class_cluster", "2:9"], "cluster 9 does not exist"),
        (["--set_cluster", "OBJ"], "KEY:VALUE"),
    ],
)
def test_bad_edit_requests(tiny_feature_run, demo_root, tmp_path, capsys, request_flags, message):
    _, common = tiny_feature_run
    flags = [f.replace("OBJ", str(first_object(demo_root)["id"])) for f in request_flags]
    assert edit(common, demo_root, tmp_path, *flags) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.slow
def test_missing_cluster_file(tiny_feature_run, demo_root, tmp_path, capsys):
    _, common = tiny_feature_run
    assert edit(common, demo_root, tmp_path, "--cluster_path", str(tmp_path / "none.npz")) == 2
    assert "feature cluster file not found" in capsys.readouterr().err
