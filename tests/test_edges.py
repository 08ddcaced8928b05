"""Canny edges with MATLAB-style relative thresholds, and the dataset's edge hook."""

import numpy as np
import pytest
import torch

from synth.data import create_dataset
from synth.data.edges import canny_edges, edge_tensor
from synth.options import parse_train_options
from tests.conftest import tiny_flags


def square(contrast: int = 200) -> np.ndarray:
    image = np.full((40, 48, 3), 20, np.uint8)
    image[10:30, 12:36] = 20 + contrast
    return image


def test_edges_lie_on_the_square_outline_only():
    edges = canny_edges(square())
    assert edges.dtype == np.uint8 and set(np.unique(edges)) == {0, 1}
    ys, xs = np.nonzero(edges)
    assert ys.min() >= 8 and ys.max() <= 31 and xs.min() >= 10 and xs.max() <= 37
    assert edges[18:22, 22:26].sum() == 0 and edges[:5].sum() == 0  # nothing inside or far outside


def test_thresholds_are_relative_to_the_maximum_gradient():
    """Like MATLAB's ratios: the same picture at a lower contrast gives the same edges; a flat one gives none."""
    assert np.array_equal(canny_edges(square(200)), canny_edges(square(60)))
    assert canny_edges(np.full((16, 16, 3), 90, np.uint8)).sum() == 0
    noisy = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert canny_edges(noisy, 0.3, 0.6).sum() < canny_edges(noisy, 0.05, 0.1).sum()
    with pytest.raises(ValueError):
        canny_edges(square(), 0.5, 0.1)


def test_edge_tensor_is_in_minus_one_one():
    edge = edge_tensor(square())
    assert edge.shape == (1, 40, 48) and set(edge.unique().tolist()) == {-1.0, 1.0}


def test_dataset_adds_edges_of_the_transformed_photo(demo_root, tmp_path):
    flags = tiny_flags(demo_root, tmp_path) + ["--resize_or_crop", "resize_and_crop", "--loadSize", "32",
                                               "--fineSize", "24", "--need_edges", "--canny_low", "0.1"]
    opt = parse_train_options(flags)
    opt.size_multiple = 4  # set by the trainer from the generator
    dataset = create_dataset(opt)
    dataset.set_epoch(1)
    item = dataset[0]
    assert item["edge"].shape == (1, 24, 24)
    photo = item["image"].add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
    assert torch.equal(item["edge"], edge_tensor(photo, 0.1, 0.175))
    opt = parse_train_options(tiny_flags(demo_root, tmp_path))
    opt.size_multiple = 4
    plain = create_dataset(opt)
    assert "edge" not in plain[0]
