"""data.preprocess: one-hot encoding and pix2pixHD's instance boundary map."""

import torch

from synth.data import effective_label_nc, instance_boundaries, one_hot


def test_one_hot_values_and_shape():
    label = torch.tensor([[[[0, 2], [1, 2]]]])
    out = one_hot(label, 3)
    assert out.shape == (1, 3, 2, 2) and out.dtype == torch.float32
    expected = torch.tensor([[[1, 0], [0, 0]], [[0, 0], [1, 0]], [[0, 1], [0, 1]]], dtype=torch.float32)
    assert torch.equal(out[0], expected)
    assert torch.equal(out.sum(1), torch.ones(1, 2, 2))


def test_one_hot_dtype_and_batch():
    label = torch.randint(0, 5, (3, 1, 4, 6))
    out = one_hot(label, 5, dtype=torch.float16)
    assert out.dtype == torch.float16 and out.shape == (3, 5, 4, 6)
    assert torch.equal(out.argmax(1, keepdim=True), label)


def test_boundaries_both_sides_of_an_edge():
    inst = torch.tensor(
        [
            [1, 1, 1, 1],
            [1, 1, 2, 2],
            [1, 1, 2, 2],
            [1, 1, 1, 1],
        ]
    ).view(1, 1, 4, 4)
    expected = torch.tensor(
        [
            [0, 0, 1, 1],
            [0, 1, 1, 1],
            [0, 1, 1, 1],
            [0, 0, 1, 1],
        ],
        dtype=torch.float32,
    ).view(1, 1, 4, 4)
    out = instance_boundaries(inst)
    assert out.dtype == torch.float32
    assert torch.equal(out, expected)


def test_boundaries_vertical_stripe_and_uniform():
    inst = torch.tensor([[5, 5, 26001, 26001, 5]]).view(1, 1, 1, 5)
    assert instance_boundaries(inst).view(-1).tolist() == [0, 1, 1, 1, 1]
    flat = torch.full((2, 1, 3, 3), 7)
    assert instance_boundaries(flat).sum() == 0


def test_boundaries_diagonal_neighbour_does_not_count():
    inst = torch.tensor([[1, 2], [2, 2]]).view(1, 1, 2, 2)
    assert instance_boundaries(inst).view(-1).tolist() == [1, 1, 1, 0]


def test_effective_label_nc():
    assert effective_label_nc(35, False) == 35
    assert effective_label_nc(150, True) == 151
