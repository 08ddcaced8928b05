"""FID / KID: the Fréchet distance against pytorch-fid's, behaviour on identical and shifted sets, statistics files,
the FID Inception loading paths and the missing-weights message."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synth.core.errors import CheckpointError, DataError, OptionError, WeightsMissingError
from synth.metrics import fid as fidlib


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Samples of one fixed correlated Gaussian per ``d`` (the seed picks the samples)."""
    mixing = np.random.default_rng(1000 + d).normal(size=(d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).normal(size=(n, d)) @ mixing + shift


@pytest.mark.parametrize(("n", "d", "shift"), [(400, 32, 0.0), (400, 32, 0.7), (300, 64, -0.2), (50, 16, 1.5)])
def test_frechet_distance_equals_pytorch_fid(n, d, shift):
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = _features(n, d, 0), _features(n, d, 1, shift) * 1.3
    mu1, s1 = fidlib.feature_statistics(a)
    mu2, s2 = fidlib.feature_statistics(b)
    ours = fidlib.frechet_distance(mu1, s1, mu2, s2)
    ref = float(calculate_frechet_distance(mu1, s1, mu2, s2))
    assert ours == pytest.approx(ref, rel=1e-6)
    assert isinstance(ours, float)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    feats = _features(500, 32, 3)
    assert abs(fidlib.fid_from_features(feats, feats)) < 1e-8
    scores = [fidlib.fid_from_features(feats, feats + s) for s in (0.1, 0.5, 1.0, 2.0)]
    assert all(x < y for x, y in zip(scores, scores[1:], strict=False))
    # a pure mean shift s in every dimension adds exactly d * s^2
    assert scores[2] == pytest.approx(32 * 1.0**2, rel=1e-9)


def test_fid_statistics_of_other_sizes_are_rejected():
    mu, s = fidlib.feature_statistics(_features(20, 8, 0))
    mu2, s2 = fidlib.feature_statistics(_features(20, 16, 0))
    with pytest.raises(DataError, match="--fid_dims"):
        fidlib.frechet_distance(mu, s, mu2, s2)
    with pytest.raises(DataError, match="at least 2"):
        fidlib.feature_statistics(np.zeros((1, 8)))


def test_kid_is_near_zero_for_identical_sets_and_grows_with_a_shift():
    feats = _features(200, 16, 5)
    same, std, m = fidlib.kernel_inception_distance(feats, feats, subsets=20, subset_size=100)
    assert m == 100
    shifted, _, _ = fidlib.kernel_inception_distance(feats, feats + 1.0, subsets=20, subset_size=100)
    assert abs(same) < 0.02 * shifted
    # two samples of one distribution: the unbiased estimate is zero within its spread
    other = _features(200, 16, 6)
    same_dist, std, _ = fidlib.kernel_inception_distance(feats, other, subsets=50, subset_size=100)
    assert abs(same_dist) < 3 * std
    further, _, _ = fidlib.kernel_inception_distance(feats, feats + 2.0, subsets=20, subset_size=100)
    assert 0 < shifted < further
    # fewer features than the subset size: the subset shrinks to the smaller set
    assert fidlib.kernel_inception_distance(feats[:30], feats[:40], subsets=2)[2] == 30


def test_kid_unbiased_estimate_matches_a_direct_computation():
    x, y = _features(12, 4, 0), _features(12, 4, 1, 0.3)
    mean, _, _ = fidlib.kernel_inception_distance(x, y, subsets=1, subset_size=12)
    k = lambda a, b: (a @ b.T / 4 + 1) ** 3  # noqa: E731
    m = 12
    xx, yy, xy = k(x, x), k(y, y), k(x, y)
    expected = ((xx.sum() - np.trace(xx)) + (yy.sum() - np.trace(yy))) / (m * (m - 1)) - 2 * xy.mean()
    assert mean == pytest.approx(expected, rel=1e-12)


def test_statistics_round_trip(tmp_path):
    feats = _features(30, 8, 0)
    path = fidlib.save_statistics(tmp_path / "real.npz", feats, width=64, height=32)
    mu, sigma, loaded = fidlib.load_statistics(path)
    assert np.allclose(mu, feats.mean(0)) and np.allclose(sigma, np.cov(feats, rowvar=False))
    assert loaded.shape == (30, 8)
    # pytorch-fid's own files hold only mu and sigma
    np.savez(tmp_path / "pf.npz", mu=mu, sigma=sigma)
    assert fidlib.load_statistics(tmp_path / "pf.npz")[2] is None
    np.savez(tmp_path / "bad.npz", x=mu)
    with pytest.raises(DataError, match="'mu' and 'sigma'"):
        fidlib.load_statistics(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="not found"):
        fidlib.load_statistics(tmp_path / "none.npz")


def _write_images(folder: Path, n: int, size=(48, 32), seed=0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_random_inception_features_in_batches(tmp_path):
    files = _write_images(tmp_path / "a", 5)
    net = fidlib.build_inception("random", dims=64)
    feats = fidlib.image_features(files, net, batch_size=2, progress=False)
    assert feats.shape == (5, 64) and feats.dtype == np.float64
    again = fidlib.image_features(files, net, batch_size=5, progress=False)
    assert np.allclose(feats, again, atol=1e-4)
    assert abs(fidlib.fid_from_features(feats, again)) < 1e-3
    # real images are resized bicubic to the generated size
    resized = fidlib.image_features(files[:2], net, size=(24, 16), progress=False)
    assert resized.shape == (2, 64)


def test_fid_weights_from_a_local_path_and_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    state = fidlib._random_inception_state()
    local = tmp_path / fidlib.FID_WEIGHTS_FILE
    torch.save(state, local)
    net = fidlib.build_inception(str(local), dims=64)
    assert torch.equal(net.blocks[0][0].conv.weight, state["Conv2d_1a_3x3.conv.weight"])
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / fidlib.FID_WEIGHTS_FILE).symlink_to(local)
    assert fidlib.resolve_fid_weights(None) == str(cache / fidlib.FID_WEIGHTS_FILE)


def test_missing_fid_weights_say_which_file_goes_where(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsMissingError) as info:
        fidlib.build_inception(None)
    msg = str(info.value)
    assert "\n" not in msg and fidlib.FID_WEIGHTS_FILE in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert "--fid_weights" in msg
    with pytest.raises(WeightsMissingError, match="not found at .*nowhere.pth"):
        fidlib.build_inception(str(tmp_path / "nowhere.pth"))
    with pytest.raises(OptionError):
        fidlib.build_inception("random", dims=100)


def test_wrong_fid_weights_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(CheckpointError) as info:
        fidlib.build_inception(str(bad), dims=64)
    assert "\n" not in str(info.value) and "not the FID Inception weights" in str(info.value)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot read"):
        fidlib.build_inception(str(tmp_path / "junk.pth"), dims=64)
