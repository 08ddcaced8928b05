"""data.transforms: output size of each --resize_or_crop mode, nearest labels, reproducible crop/flip."""

import random
from types import SimpleNamespace

import numpy as np
import pytest

from synth.core.errors import OptionError
from synth.data.transforms import TransformParams, apply_to_image, apply_to_label, choose_params


def make_opt(**kw):
    base = dict(resize_or_crop="scale_width", loadSize=64, fineSize=32, size_multiple=16, isTrain=True, no_flip=False)
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.mark.parametrize(
    "mode, size, expected",
    [
        ("resize_and_crop", (100, 50), (32, 32)),
        ("crop", (100, 50), (32, 32)),
        ("scale_width", (128, 64), (64, 32)),
        ("scale_width_and_crop", (200, 100), (32, 32)),
        ("none", (100, 41), (96, 48)),
        ("none", (5, 7), (16, 16)),
    ],
)
def test_output_size_per_mode(mode, size, expected):
    opt = make_opt(resize_or_crop=mode)
    params = choose_params(opt, size, random.Random(0))
    assert params.output_size == expected
    label = np.random.default_rng(0).integers(0, 4, (size[1], size[0]))
    image = np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    assert apply_to_label(label, params).shape == (expected[1], expected[0])
    out = apply_to_image(image, params)
    assert out.shape == (expected[1], expected[0], 3) and out.dtype == np.uint8


def test_scale_width_keeps_aspect():
    params = choose_params(make_opt(loadSize=256), (2048, 1024), random.Random(0))
    assert params.resize_size == (256, 128) and params.crop is None


def test_nearest_keeps_label_values():
    rng = np.random.default_rng(0)
    label = rng.choice(np.array([0, 3, 26001, 26002]), size=(77, 130))
    for mode in ("scale_width", "resize_and_crop", "none"):
        params = choose_params(make_opt(resize_or_crop=mode, size_multiple=1), (130, 77), random.Random(1))
        out = apply_to_label(label, params)
        assert out.dtype == label.dtype
        assert set(np.unique(out)) <= {0, 3, 26001, 26002}


def test_flip_and_crop_match_between_label_and_image():
    opt = make_opt(resize_or_crop="crop", fineSize=16)
    label = np.arange(40 * 48).reshape(40, 48)
    image = np.stack([label % 256] * 3, axis=-1).astype(np.uint8)
    for seed in range(10):
        params = choose_params(opt, (48, 40), random.Random(seed))
        np.testing.assert_array_equal(apply_to_image(image, params)[..., 0], apply_to_label(label, params) % 256)


def test_same_seed_same_params_different_epochs_differ():
    opt = make_opt(resize_or_crop="resize_and_crop", loadSize=128, fineSize=32)

    def draw(epoch):
        return choose_params(opt, (300, 200), random.Random(f"7-{epoch}-3"))

    assert draw(0) == draw(0)
    assert len({(p.crop, p.flip) for p in (draw(e) for e in range(8))}) > 1


def test_test_time_centre_crop_no_flip():
    opt = make_opt(resize_or_crop="crop", fineSize=16, isTrain=False)
    params = {choose_params(opt, (48, 40), random.Random(s)) for s in range(5)}
    assert params == {TransformParams((48, 40), (48, 40), (16, 12, 16, 16), False, (16, 16))}


def test_no_flip_flag():
    opt = make_opt(no_flip=True)
    assert not any(choose_params(opt, (128, 64), random.Random(s)).flip for s in range(20))
    assert any(choose_params(make_opt(), (128, 64), random.Random(s)).flip for s in range(20))


def test_size_not_divisible_by_multiple():
    with pytest.raises(OptionError) as info:
        choose_params(make_opt(loadSize=100), (200, 100), random.Random(0))
    msg = str(info.value)
    assert "100x50" in msg and "16" in msg and "--loadSize" in msg


def test_crop_larger_than_image():
    with pytest.raises(OptionError, match="larger than the image"):
        choose_params(make_opt(resize_or_crop="crop", fineSize=64), (48, 40), random.Random(0))


def test_unknown_mode():
    with pytest.raises(OptionError, match="resize_or_crop"):
        choose_params(make_opt(resize_or_crop="zoom"), (48, 40), random.Random(0))
