"""The instance norm: the same as nn.InstanceNorm2d, and right gradients where torch's instance_norm gets them wrong."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from synth.models.networks.generator_global import GlobalGenerator
from synth.models.networks.norm import CHANNELS_LAST_MIN_PIXELS, InstanceNorm2d, norm_layer

CL = torch.channels_last


def reference_input_grad(x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """d(instance_norm(x)) . grad_out, in float64 and contiguous memory (where torch's own kernel is right)."""
    x64 = x.detach().double().contiguous().requires_grad_()
    F.instance_norm(x64).backward(grad_out.double().contiguous())
    return x64.grad


def test_norm_layer_instance_builds_our_instance_norm_with_pix2pixhd_settings():
    norm = norm_layer("instance")(16)
    assert isinstance(norm, InstanceNorm2d) and isinstance(norm, nn.InstanceNorm2d)
    assert not norm.affine and not norm.track_running_stats and norm.state_dict() == {}


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_forward_and_input_gradient_equal_nn_instance_norm(dtype, atol):
    torch.manual_seed(0)
    x = (torch.randn(2, 6, 9, 13, dtype=dtype) * 3 + 1).requires_grad_()
    grad_out = torch.randn(2, 6, 9, 13, dtype=dtype)
    ours, theirs = InstanceNorm2d(6), nn.InstanceNorm2d(6)
    y = ours(x)
    (grad_ours,) = torch.autograd.grad(y, x, grad_out)
    expected = theirs(x)
    (grad_theirs,) = torch.autograd.grad(expected, x, grad_out)
    torch.testing.assert_close(y, expected, atol=atol, rtol=0)
    torch.testing.assert_close(grad_ours, grad_theirs, atol=atol, rtol=0)
    assert y.abs().max() > 1  # normalised values, not zeros


@pytest.mark.parametrize("input_layout", [torch.contiguous_format, CL])
def test_input_gradient_is_right_when_the_incoming_gradient_is_channels_last(input_layout):
    torch.manual_seed(0)
    x = torch.randn(1, 32, 12, 20).contiguous(memory_format=input_layout).requires_grad_()
    grad_out = torch.randn(1, 32, 12, 20).contiguous(memory_format=CL)
    expected = reference_input_grad(x, grad_out)
    InstanceNorm2d(32)(x).backward(grad_out)
    torch.testing.assert_close(x.grad.double(), expected, atol=1e-5, rtol=0)
    assert expected.abs().max() > 0.5


@pytest.mark.parametrize("height, width", [(8, 16), (32, 64)])
def test_channels_last_inference_gives_the_same_values(height, width):
    """Small maps go through a contiguous copy, large ones stay channels-last: the values are the same."""
    torch.manual_seed(0)
    x = torch.randn(1, 16, height, width).contiguous(memory_format=CL)
    with torch.inference_mode():
        y = InstanceNorm2d(16)(x)
    torch.testing.assert_close(y, F.instance_norm(x.contiguous()), atol=1e-5, rtol=0)
    assert y.is_contiguous(memory_format=CL) == (height * width >= CHANNELS_LAST_MIN_PIXELS)


def test_unbatched_input_takes_nn_instance_norm():
    x = torch.randn(4, 5, 6)
    torch.testing.assert_close(InstanceNorm2d(4)(x), nn.InstanceNorm2d(4)(x))


def test_channels_last_generator_gets_the_same_parameter_gradients():
    """--channels_last training: with torch's instance_norm the weight gradients were off by their own size."""
    torch.manual_seed(0)
    reference = GlobalGenerator(8, 3, ngf=8, n_downsampling=2, n_blocks=2)
    x, target = torch.randn(1, 8, 32, 64), torch.randn(1, 3, 32, 64)

    def gradients(channels_last: bool) -> dict[str, torch.Tensor]:
        net = GlobalGenerator(8, 3, ngf=8, n_downsampling=2, n_blocks=2)
        net.load_state_dict(reference.state_dict())
        inputs = x.clone()
        if channels_last:
            net, inputs = net.to(memory_format=CL), inputs.contiguous(memory_format=CL)
        ((net(inputs) - target) ** 2).mean().backward()
        return {name: p.grad for name, p in net.named_parameters()}

    nchw, channels_last = gradients(False), gradients(True)
    scale = max(g.abs().max() for g in nchw.values())
    for name, grad in nchw.items():
        torch.testing.assert_close(channels_last[name], grad, atol=1e-5 * float(scale), rtol=0, msg=name)
