"""The generator's first convolution by gather when its leading channels are one-hot: the values and gradients of
the direct convolution, the direct path itself for anything else, and the same G and training step."""

import pytest
import torch
import torch.nn.functional as F

from synth.models.networks.blocks import input_stem
from synth.models.networks.generator_global import GlobalGenerator
from synth.models.networks.generator_local import LocalEnhancer
from synth.models.networks.norm import norm_layer
from synth.models.networks.onehot_conv import OneHotConv2d, OneHotConvFunction
from synth.options import parse_train_options
from synth.trainer import Trainer
from tests.conftest import tiny_flags


def _layout(batch: int, labels: int, extra: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, labels, (batch, height, width), generator=generator)
    one_hot = F.one_hot(ids, labels).permute(0, 3, 1, 2).to(torch.float64)
    return torch.cat([one_hot, torch.rand(batch, extra, height, width, generator=generator, dtype=torch.float64)], 1)


@pytest.mark.parametrize("extra", [0, 1, 3])
def test_values_and_gradients_equal_the_direct_convolution(extra):
    torch.manual_seed(0)
    conv = OneHotConv2d(5 + extra, 6, 7, label_channels=5).double()
    x = _layout(2, 5, extra, 13, 17).requires_grad_(extra > 0)  # extra channels: features from E need gradients
    ours, direct = conv(x), F.conv2d(x, conv.weight, conv.bias)
    assert ours.shape == direct.shape and ours.is_contiguous()
    torch.testing.assert_close(ours, direct, rtol=0, atol=1e-12)
    grad_out = torch.randn_like(direct)
    inputs = (conv.weight, conv.bias, *((x,) if extra else ()))
    for a, b in zip(torch.autograd.grad(ours, inputs, grad_out), torch.autograd.grad(direct, inputs, grad_out),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_anything_but_an_exact_one_hot_runs_the_direct_convolution():
    torch.manual_seed(1)
    conv = OneHotConv2d(4, 3, 3, label_channels=3)
    x = _layout(1, 3, 1, 6, 6).float()
    soft = x.clone()
    soft[0, :3, 2, 2] = torch.tensor([0.5, 0.5, 0.0])  # an interpolated label: sums to one, but not one-hot
    doubled = x.clone()
    doubled[0, :3, 1, 1] = 1.0  # two labels at one pixel
    negative = x.clone()
    negative[0, :3, 0, 0] = torch.tensor([2.0, -1.0, 0.0])
    for other in (soft, doubled, negative):
        assert torch.equal(conv(other), F.conv2d(other, conv.weight, conv.bias))  # bit for bit: the same op


def test_under_bf16_autocast_it_computes_as_the_autocast_convolution_does():
    """Weights rounded to bf16, products summed exactly enough, one rounding of the output: within half a bf16 unit
    of the exact sum of the rounded weights, as the direct bf16 convolution is."""
    torch.manual_seed(2)
    conv = OneHotConv2d(6, 8, 7, label_channels=5)
    x = _layout(1, 5, 1, 16, 16).float()
    rounded = [p.detach().to(torch.bfloat16).double() for p in (conv.weight, conv.bias)]
    exact = F.conv2d(x.to(torch.bfloat16).double(), *rounded)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, direct = conv(x), F.conv2d(x, conv.weight, conv.bias)
    assert ours.dtype == direct.dtype == torch.bfloat16
    for got in (ours, direct):
        assert ((got.double() - exact).abs() <= 2 ** -8 * exact.abs() + 1e-6).all()
    kept = OneHotConv2d(6, 8, 7, label_channels=5).to(torch.bfloat16)  # bf16 weights kept for inference
    kept.load_state_dict(conv.state_dict())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(kept(x), ours)


def test_generators_take_the_label_channels_from_the_options_and_give_the_same_images():
    flags = ["--dataroot", ".", "--label_nc", "5", "--ngf", "4", "--n_downsample_global", "2",
             "--n_blocks_global", "1", "--device", "cpu"]
    opt = parse_train_options(flags)
    g = GlobalGenerator.from_options(opt, 6)
    assert isinstance(g.stem[1], OneHotConv2d) and g.stem[1].label_channels == 5
    assert list(g.state_dict())[:2] == ["stem.1.weight", "stem.1.bias"]  # checkpoints unchanged
    dontcare = GlobalGenerator.from_options(parse_train_options(flags + ["--contain_dontcare_label"]), 7)
    assert dontcare.stem[1].label_channels == 6
    assert not isinstance(GlobalGenerator.from_options(parse_train_options(flags[:2] + ["--label_nc", "0"]),
                                                       3).stem[1], OneHotConv2d)
    local = LocalEnhancer.from_options(parse_train_options(flags + ["--netG", "local", "--ngf", "4"]), 6)
    assert local.enhancers[-1].stem[1].label_channels == 5  # only the full-resolution branch sees one-hot labels
    assert not isinstance(local.global_net.stem[1], OneHotConv2d)
    x = _layout(1, 5, 1, 16, 16).float()
    direct = input_stem(6, 4, norm_layer("instance"))
    direct.load_state_dict(g.stem.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(g.stem(x), direct(x), rtol=1e-5, atol=1e-5)


def test_a_training_step_is_the_direct_convolutions_step(demo_root, tmp_path, monkeypatch):
    gathered = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path / "a")))
    direct = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path / "b")))
    for module in direct.model.modules():
        if isinstance(module, OneHotConv2d):
            module.label_channels = 0  # the direct convolution
    calls = []
    apply = OneHotConvFunction.apply
    monkeypatch.setattr(OneHotConvFunction, "apply", lambda *args: calls.append(1) or apply(*args))
    batch = next(iter(direct.loader))
    for step in range(2):
        a = direct.train_step(batch)
        assert len(calls) == step  # the direct model gathers nothing
        b = gathered.train_step(batch)
        assert len(calls) == step + 1  # the stem gathered, once per step
        torch.testing.assert_close(b.fake, a.fake, rtol=1e-4, atol=1e-5)
        for name, value in (a.g_losses | a.d_losses).items():
            torch.testing.assert_close((b.g_losses | b.d_losses)[name], value, rtol=1e-4, atol=1e-5)
