"""Losses: GAN modes, feature matching weights and the VGG perceptual loss on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch

from synth.core.errors import OptionError
from synth.models.losses import VGG_LAYER_WEIGHTS, GANLoss, L1Distance, VGGLoss, feature_matching_loss
from synth.models.networks import VGG19Features


def two_scales(first: torch.Tensor, second: torch.Tensor) -> list[list[torch.Tensor]]:
    """A D output with one ignored feature map per scale and the given predictions last."""
    return [[torch.full((1, 4, 8, 8), 7.0), first], [torch.full((1, 4, 4, 4), 7.0), second]]


def test_lsgan_sums_over_scales_and_uses_only_predictions():
    preds = two_scales(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2))
    loss = GANLoss("ls")
    assert loss(preds, True).item() == pytest.approx(2.0)
    assert loss(preds, False).item() == pytest.approx(0.0)
    half = two_scales(torch.full((1, 1, 4, 4), 0.5), torch.ones(1, 1, 2, 2))
    assert loss(half, True).item() == pytest.approx(0.25)
    assert loss(half, False, for_discriminator=False).item() == pytest.approx(0.25 + 1.0)


def test_hinge_values():
    preds = [[torch.tensor([0.5, -2.0])]]
    loss = GANLoss("hinge")
    assert loss(preds, True).item() == pytest.approx((0.5 + 3.0) / 2)
    assert loss(preds, False).item() == pytest.approx((1.5 + 0.0) / 2)
    assert loss(preds, True, for_discriminator=False).item() == pytest.approx(0.75)
    two = [[torch.tensor([0.5, -2.0])], [torch.tensor([2.0, 2.0])]]
    assert loss(two, True).item() == pytest.approx(1.75 + 0.0)


def test_vanilla_is_bce_on_logits():
    preds = two_scales(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2))
    assert GANLoss("vanilla")(preds, True).item() == pytest.approx(2 * math.log(2))
    big = [[torch.full((3,), 20.0)]]
    assert GANLoss("vanilla")(big, True).item() == pytest.approx(0.0, abs=1e-6)


def test_gan_loss_accepts_a_bare_tensor_and_passes_gradients():
    x = torch.zeros(2, 1, 3, 3, requires_grad=True)
    GANLoss("ls")(x, True).backward()
    assert x.grad is not None and torch.all(x.grad < 0)


def test_unknown_gan_mode():
    with pytest.raises(OptionError, match="wgan"):
        GANLoss("wgan")


def test_feature_matching_weighting_by_hand():
    # Two scales of n_layers_D = 2: three feature maps and a prediction each.
    real = [[torch.zeros(1, 2, 4, 4) for _ in range(4)] for _ in range(2)]
    fake = [
        [torch.full((1, 2, 4, 4), float(s + j + 1)) for j in range(3)] + [torch.full((1, 1, 2, 2), 99.0)]
        for s in range(2)
    ]
    per_scale = [sum(float(s + j + 1) for j in range(3)) for s in range(2)]  # L1 of each layer: 6 and 9
    expected = 10.0 * sum((1 / 2) * (4 / 3) * total for total in per_scale)
    assert feature_matching_loss(fake, real, lambda_feat=10.0).item() == pytest.approx(expected)


def test_feature_matching_detaches_real():
    real = [[torch.ones(1, 1, 2, 2, requires_grad=True), torch.zeros(1, 1, 1, 1)]]
    fake = [[torch.zeros(1, 1, 2, 2, requires_grad=True), torch.zeros(1, 1, 1, 1)]]
    feature_matching_loss(fake, real, 1.0).backward()
    assert fake[0][0].grad is not None and real[0][0].grad is None


def test_feature_matching_without_features_is_zero():
    preds = [[torch.ones(1, 1, 2, 2)], [torch.ones(1, 1, 1, 1)]]
    assert feature_matching_loss(preds, [[torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 1, 1, 1)]], 10.0).item() == 0


@pytest.fixture(scope="module")
def vgg_loss() -> VGGLoss:
    torch.manual_seed(0)
    return VGGLoss(VGG19Features())


def test_vgg_loss_zero_for_identical_and_positive_otherwise(vgg_loss):
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    assert vgg_loss(image, image.clone()).item() == 0
    assert vgg_loss(image, torch.rand(1, 3, 32, 32) * 2 - 1).item() > 0


def test_vgg_loss_gradients_reach_fake_only(vgg_loss):
    fake = torch.rand(1, 3, 32, 32, requires_grad=True)
    real = torch.rand(1, 3, 32, 32, requires_grad=True)
    vgg_loss(fake, real).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert real.grad is None
    assert all(p.grad is None and not p.requires_grad for p in vgg_loss.parameters())


@pytest.mark.parametrize("dtype, autocast", [(torch.float64, False), (torch.float32, False), (torch.bfloat16, True)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_l1_distance_gives_l1_loss_value_and_gradients_bit_for_bit_in_the_fakes_layout(dtype, autocast, layout):
    torch.manual_seed(3)
    fake, real = (torch.randn(2, 8, 6, 10).to(dtype).contiguous(memory_format=layout) for _ in range(2))
    fake[0, 0] = real[0, 0]  # equal values: no gradient there, as F.l1_loss's sgn(0)
    ours, theirs = ((fake.clone().requires_grad_(), real.clone().requires_grad_()) for _ in range(2))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss_ours = 0.37 * L1Distance.apply(*ours)
        loss_theirs = 0.37 * torch.nn.functional.l1_loss(*theirs)
    (loss_ours * 3).backward()
    (loss_theirs * 3).backward()
    assert loss_ours.dtype == loss_theirs.dtype and torch.equal(loss_ours, loss_theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.grad.dtype == dtype and torch.equal(a.grad, b.grad)
    assert ours[0].grad.is_contiguous(memory_format=layout)
    assert (ours[0].grad[0, 0] == 0).all() and (ours[0].grad[1] != 0).all()


def test_vgg_loss_on_the_cpu_runs_vgg19_channels_last_with_the_contiguous_loss_and_gradient(vgg_loss):
    torch.manual_seed(4)
    fake = (torch.rand(1, 3, 32, 48) * 2 - 1).requires_grad_()
    real = torch.rand(1, 3, 32, 48) * 2 - 1
    layouts = []
    hook = vgg_loss.vgg.slice1.register_forward_hook(
        lambda _m, _a, out: layouts.append(out.is_contiguous(memory_format=torch.channels_last)))
    try:
        loss = vgg_loss(fake, real)
    finally:
        hook.remove()
    (grad,) = torch.autograd.grad(loss, fake)
    assert layouts == [True, True]  # fake and real passes
    fake_features = vgg_loss.vgg(fake)  # contiguous maps, F.l1_loss
    with torch.no_grad():
        real_features = vgg_loss.vgg(real)
    expected = sum(w * torch.nn.functional.l1_loss(f, r)
                   for w, f, r in zip(VGG_LAYER_WEIGHTS, fake_features, real_features, strict=True))
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad, torch.autograd.grad(expected, fake)[0], rtol=1e-4, atol=1e-8)
