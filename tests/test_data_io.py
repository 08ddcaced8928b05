"""data.io: reading label/instance maps and photos, and one clear DataError per kind of bad file."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synth.core.errors import DataError
from synth.data.io import read_image, read_instance, read_label


def _save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    img = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    img.save(path)
    return path


def test_read_label_gray_png(tmp_path):
    arr = np.array([[0, 1, 2], [33, 34, 255]], dtype=np.uint8)
    out = read_label(_save(tmp_path / "l.png", arr))
    assert out.dtype == np.int64 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, arr)


def test_read_label_palette_gives_indices(tmp_path):
    arr = np.array([[0, 3], [7, 1]], dtype=np.uint8)
    img = Image.fromarray(arr, mode="L").convert("P")
    img.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)])
    img.putdata(arr.flatten().tolist())
    img.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(read_label(tmp_path / "p.png"), arr)


def test_read_instance_16bit(tmp_path):
    arr = np.array([[7, 26001], [26002, 33000]], dtype=np.uint16)
    path = _save(tmp_path / "inst.png", arr)
    out = read_instance(path)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, arr.astype(np.int64))


def test_read_image_converts_to_rgb(tmp_path):
    gray = _save(tmp_path / "g.png", np.full((4, 5), 200, np.uint8))
    rgba = _save(tmp_path / "a.png", np.full((4, 5, 4), 100, np.uint8))
    for path, value in ((gray, 200), (rgba, 100)):
        out = read_image(path)
        assert out.shape == (4, 5, 3) and out.dtype == np.uint8
        assert (out == value).all()


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.png: file not found"):
        read_label(tmp_path / "nope.png")


def test_unreadable_png_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.png"
    path.write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(DataError) as info:
        read_label(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_png(tmp_path):
    rng = np.random.default_rng(0)
    full = _save(tmp_path / "full.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = full.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        read_image(cut)
    assert str(cut) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("channels", [3, 4])
def test_rgb_label_map_rejected(tmp_path, channels):
    path = _save(tmp_path / "color.png", np.zeros((4, 4, channels), np.uint8))
    with pytest.raises(DataError) as info:
        read_label(path)
    msg = str(info.value)
    assert str(path) in msg and f"has {channels} channels" in msg and "single-channel" in msg
