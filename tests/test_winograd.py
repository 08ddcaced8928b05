"""Winograd F(2x2, 3x3) for the res blocks' 3x3 convolutions: the same convolution as F.conv2d, chosen by
--conv_algorithm at inference (its fixed kernels refused where gradients flow) and, differentiable, in training;
the same pictures and the same training steps as direct convolutions."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import synth.inference
from synth import runtime
from synth.assembly import build_model
from synth.core.errors import OptionError
from synth.models.losses.vgg_perceptual import VGGLoss
from synth.models.networks import vgg, winograd
from synth.models.networks.blocks import ResnetBlock
from synth.models.networks.vgg import VGG19Features
from synth.models.networks.winograd import (
    Conv3x3,
    FrozenWinogradConv3x3,
    WinogradConv3x3,
    matmul_conv3x3,
    split_backward_conv3x3,
    transform_kernel_gradients,
    transform_kernels,
    winograd_conv3x3,
)
from synth.options import parse_test_options, parse_train_options
from synth.runtime import conv_algorithm
from synth.trainer import Trainer
from tests.conftest import tiny_flags


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 6, 6), (1, 4, 3, 3), (3, 2, 8, 5)])
def test_values_equal_a_direct_convolution(shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64)
    weight, bias = torch.randn(6, shape[1], 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    ours, reference = winograd_conv3x3(x, transform_kernels(weight), bias), F.conv2d(x, weight, bias)
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
    torch.testing.assert_close(winograd_conv3x3(x, transform_kernels(weight)), F.conv2d(x, weight), rtol=0, atol=1e-12)


def test_fp32_stays_within_fp32_rounding_of_a_direct_convolution():
    torch.manual_seed(1)
    x, weight, bias = torch.randn(1, 16, 10, 12), torch.randn(8, 16, 3, 3) / 12, torch.randn(8)
    with torch.inference_mode():
        ours = winograd_conv3x3(x, transform_kernels(weight), bias)
    torch.testing.assert_close(ours, F.conv2d(x, weight, bias), rtol=1e-5, atol=1e-5)


ONEDNN_CHOICES = [False, *([True] if winograd._onednn_available() else [])]


@pytest.mark.parametrize("onednn", ONEDNN_CHOICES)
def test_batched_fp32_products_by_either_library_give_torch_matmuls_values_for_any_strides(onednn):
    torch.manual_seed(11)
    a = torch.randn(3, 9, 5).transpose(1, 2)  # [3, 5, 9], transposed matrices as the backward products take them
    b = torch.randn(3, 7, 9).transpose(1, 2)  # [3, 9, 7]
    exact = torch.matmul(a.double(), b.double())
    torch.testing.assert_close(winograd.batched_products(a, b, onednn=onednn).double(), exact, rtol=1e-5, atol=1e-5)
    out = torch.zeros(3, 5, 10)
    winograd.batched_products(a, b, out=out[:, :, 2:9], onednn=onednn)  # columns of a wider tensor, as the blocks
    torch.testing.assert_close(out[:, :, 2:9].double(), exact, rtol=1e-5, atol=1e-5)
    assert out[:, :, :2].abs().max() == 0 and out[:, :, 9:].abs().max() == 0


@pytest.mark.parametrize(("capability", "intel", "expected"), [
    ("AVX512", False, True), ("AVX512", True, False), ("AVX2", False, False)])
def test_fp32_products_run_on_onednn_only_on_avx512_cpus_that_are_not_intels(capability, intel, expected,
                                                                              monkeypatch):
    monkeypatch.setattr(winograd, "_onednn_available", lambda: True)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(winograd, "_intel_cpu", lambda: intel)
    winograd.fp32_products_by_onednn.cache_clear()
    try:
        assert winograd.fp32_products_by_onednn() is expected
    finally:
        winograd.fp32_products_by_onednn.cache_clear()


def test_the_cpu_vendor_is_read_from_proc_cpuinfo(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open
    for vendor, expected in (("GenuineIntel", True), ("AuthenticAMD", False)):
        info = tmp_path / vendor
        info.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: 6\n")
        monkeypatch.setattr(builtins, "open", lambda path, *a, _info=info, **k:
                            real_open(_info if path == "/proc/cpuinfo" else path, *a, **k))
        assert winograd._intel_cpu() is expected
    monkeypatch.setattr(builtins, "open", lambda *a, **k: (_ for _ in ()).throw(OSError("no /proc")))
    assert winograd._intel_cpu() is False


def test_fp32_training_keeps_the_input_for_backward_and_16_bit_training_its_tiles():
    x = torch.randn(1, 16, 10, 12, requires_grad=True)
    weight = (torch.randn(8, 16, 3, 3) / 12).requires_grad_()
    assert WinogradConv3x3.apply(x, weight, None).grad_fn.saved_tensors[0].shape == x.shape  # 1/4 of its tiles
    with torch.autocast("cpu", dtype=torch.bfloat16):
        saved = WinogradConv3x3.apply(x, weight, None).grad_fn.saved_tensors[0]
    assert saved.shape == (16, 4 * 5, 16) and saved.dtype == torch.bfloat16


@pytest.mark.parametrize("onednn", ONEDNN_CHOICES)
def test_fp32_training_winograd_on_either_library_stays_within_fp32_rounding_of_a_direct_convolution(onednn,
                                                                                                   monkeypatch):
    monkeypatch.setattr(winograd, "fp32_products_by_onednn", lambda: onednn)
    monkeypatch.setattr(winograd, "KERNEL_BLOCK", 4)
    torch.manual_seed(12)
    x = torch.randn(1, 16, 10, 12, requires_grad=True)
    weight = (torch.randn(8, 16, 3, 3) / 12).requires_grad_()
    ours, reference = WinogradConv3x3.apply(x, weight, None), F.conv2d(x, weight)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(reference)
    for a, b in zip(torch.autograd.grad(ours, (x, weight), grad_out),
                    torch.autograd.grad(reference, (x, weight), grad_out), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_under_bf16_autocast_it_computes_in_bf16_within_bf16_error():
    torch.manual_seed(2)
    x, weight = torch.randn(1, 32, 10, 10), torch.randn(32, 32, 3, 3) / 17
    exact = F.conv2d(x, weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, direct = winograd_conv3x3(x, transform_kernels(weight)), F.conv2d(x, weight)
    assert ours.dtype == direct.dtype == torch.bfloat16
    scale = exact.abs().max()
    # bf16 keeps 8 bits: a few units of 2^-8 of the output's scale; Winograd rounds its tiles once more
    assert (ours.float() - exact).abs().max() <= 4 * (direct.float() - exact).abs().max() + 1e-3 * scale
    assert (ours.float() - exact).abs().max() <= 2 ** -5 * scale


def test_conv3x3_runs_directly_until_switched_and_keeps_conv2d_state_dict_keys():
    torch.manual_seed(3)
    wide, narrow = Conv3x3(winograd.MIN_CHANNELS, winograd.MIN_CHANNELS), Conv3x3(4, 4)
    assert list(wide.state_dict()) == list(torch.nn.Conv2d(4, 4, 3).state_dict()) == ["weight", "bias"]
    x = torch.randn(1, winograd.MIN_CHANNELS, 4, 4)
    with torch.inference_mode():
        assert torch.equal(wide(x), F.conv2d(x, wide.weight, wide.bias))  # direct: bit for bit
        assert narrow.use_winograd() is False and narrow.kernels is None  # too narrow to pay
        assert wide.use_winograd() is True and wide.kernels.shape == (16, wide.out_channels, wide.in_channels)
        torch.testing.assert_close(wide(x), F.conv2d(x, wide.weight, wide.bias), rtol=1e-4, atol=1e-4)
    assert isinstance(ResnetBlock(8).body[1], Conv3x3)
    with pytest.raises(RuntimeError, match="prepared for inference by use_winograd"):
        wide(x)  # with gradients on, the transformed kernels could go stale


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 6, 6), (1, 4, 3, 3), (3, 2, 8, 5)])
@pytest.mark.parametrize("kernel_block", [256, 4])  # 6 output channels in one block, or in blocks of 4 and 2
@pytest.mark.parametrize("gradient_layout", [torch.contiguous_format, torch.channels_last])
def test_training_winograd_gives_the_values_and_gradients_of_a_direct_convolution(shape, kernel_block,
                                                                                  gradient_layout, monkeypatch):
    monkeypatch.setattr(winograd, "KERNEL_BLOCK", kernel_block)
    torch.manual_seed(4)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, shape[1], 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True)
    ours, reference = WinogradConv3x3.apply(x, weight, bias), F.conv2d(x, weight, bias)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
    grad_out = torch.randn_like(reference).contiguous(memory_format=gradient_layout)  # as the next layer gives it
    for a, b in zip(torch.autograd.grad(ours, (x, weight, bias), grad_out),
                    torch.autograd.grad(reference, (x, weight, bias), grad_out), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)
    frozen = weight.detach()  # a frozen layer: only the input's gradient is computed
    (grad_x,) = torch.autograd.grad(WinogradConv3x3.apply(x, frozen, None), x, grad_out)
    torch.testing.assert_close(grad_x, torch.autograd.grad(F.conv2d(x, frozen), x, grad_out)[0], rtol=0, atol=1e-11)


def test_training_winograd_under_bf16_autocast_computes_in_bf16_and_keeps_fp32_weight_gradients():
    torch.manual_seed(5)
    x = torch.randn(1, 32, 10, 10, requires_grad=True)
    weight = (torch.randn(32, 32, 3, 3) / 17).requires_grad_(True)
    exact = F.conv2d(x, weight)
    exact_grads = torch.autograd.grad(exact.sum(), (x, weight))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = WinogradConv3x3.apply(x, weight, None)
    assert ours.dtype == torch.bfloat16
    grads = torch.autograd.grad(ours.float().sum(), (x, weight))
    assert [g.dtype for g in grads] == [torch.float32, torch.float32]
    for got, want in zip((ours, *grads), (exact, *exact_grads), strict=True):
        assert (got.float() - want).abs().max() <= 2 ** -5 * want.abs().max()  # bf16's 8 bits, a few roundings


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_the_weight_gradients_transform_is_the_adjoint_of_the_kernel_transform_in_each_dtype(dtype):
    torch.manual_seed(11)
    weight, grads = torch.randn(6, 5, 3, 3, dtype=torch.float64), torch.randn(16, 6, 5, dtype=torch.float64)
    adjoint = transform_kernel_gradients(grads, 5)  # <T w, u> = <w, T^T u>
    torch.testing.assert_close((transform_kernels(weight) * grads).sum(), (weight * adjoint).sum())
    ours = transform_kernel_gradients(grads.to(dtype), 5)  # 16-bit dtypes form the product the other way round
    assert ours.dtype == dtype and ours.shape == (6, 5, 3, 3)
    assert (ours.double() - adjoint).abs().max() <= 2 * torch.finfo(dtype).eps * adjoint.abs().max()


@pytest.mark.parametrize("kernel_block", [256, 12])  # one block, or blocks of 12, 12 and 8 output channels
def test_bf16_training_keeps_the_forward_kernels_for_backward_and_fp32_transforms_them_again(kernel_block,
                                                                                              monkeypatch):
    monkeypatch.setattr(winograd, "KERNEL_BLOCK", kernel_block)
    monkeypatch.setattr(winograd, "KERNEL_BLOCK_16BIT", kernel_block)
    calls = []
    transform = winograd.transform_kernels
    monkeypatch.setattr(winograd, "transform_kernels", lambda weight: calls.append(weight.dtype) or transform(weight))
    torch.manual_seed(6)
    x = torch.randn(1, 16, 9, 11, requires_grad=True)
    weight = (torch.randn(32, 16, 3, 3) / 12).requires_grad_(True)
    blocks = -(-32 // kernel_block)

    def step(bf16: bool) -> list[torch.Tensor]:
        calls.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = WinogradConv3x3.apply(x, weight, None)
        return [out, *torch.autograd.grad(out.float().square().sum(), (x, weight))]

    kept = step(bf16=True)
    assert calls == [torch.bfloat16] * blocks  # forward only: transformed from the bf16-cast weight, kept
    step(bf16=False)
    assert calls == [torch.float32] * (2 * blocks)  # forward, and again in backward
    monkeypatch.setattr(winograd, "_keeps_kernels", lambda dtype: False)
    again = step(bf16=True)
    assert calls == [torch.bfloat16] * (2 * blocks)
    for a, b in zip(kept, again, strict=True):
        assert torch.equal(a, b)  # keeping them changes no value


def test_16_bit_training_transforms_kernels_in_blocks_of_its_own_size(monkeypatch):
    monkeypatch.setattr(winograd, "KERNEL_BLOCK", 8)  # fp32: 4 blocks of a 32-wide layer
    monkeypatch.setattr(winograd, "KERNEL_BLOCK_16BIT", 32)  # bf16: the whole layer at once
    shapes = []
    transform = winograd.transform_kernels
    monkeypatch.setattr(winograd, "transform_kernels",
                        lambda weight: shapes.append(weight.shape[0]) or transform(weight))
    torch.manual_seed(8)
    x = torch.randn(1, 16, 9, 11, requires_grad=True)
    weight = (torch.randn(32, 16, 3, 3) / 12).requires_grad_(True)
    results = {}
    for dtype in (torch.bfloat16, torch.float32):
        shapes.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out = WinogradConv3x3.apply(x, weight, None)
        grads = torch.autograd.grad(out.float().square().sum(), (x, weight))
        results[dtype] = (out.float(), *grads)
        assert shapes == ([32] if dtype == torch.bfloat16 else [8] * 8)  # fp32: forward and again in backward
    for a, b in zip(results[torch.bfloat16], results[torch.float32], strict=True):
        torch.testing.assert_close(a, b, rtol=0.05, atol=0.05 * b.abs().max().item())


def test_auto_trains_directly_on_a_cpu_with_amx_with_split_backwards_unless_winograd_is_asked_for(
        demo_root, tmp_path, monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
    monkeypatch.setattr(runtime, "cpu_has_amx", lambda: True)
    bf16 = tiny_flags(demo_root, tmp_path / "o") + ["--amp", "bf16"]
    auto = Trainer(parse_train_options(bf16))
    layers = [m for m in auto.model.modules() if isinstance(m, Conv3x3)]
    assert layers and not any(m.per_call for m in layers) and all(m.split_backward for m in layers)
    direct = Trainer(parse_train_options(bf16 + ["--conv_algorithm", "direct", "--name", "direct"]))
    assert not any(m.split_backward for m in direct.model.modules() if isinstance(m, Conv3x3))
    fp32 = [tiny_flags(demo_root, tmp_path / "f", name=name) for name in ("direct", "auto")]
    ours = Trainer(parse_train_options(fp32[1]))
    layers = [m for m in ours.model.modules() if isinstance(m, Conv3x3)]
    assert layers and not any(m.per_call for m in layers) and all(m.split_backward for m in layers)  # fp32 too
    _assert_same_steps(Trainer(parse_train_options(fp32[0] + ["--conv_algorithm", "direct"])), ours)
    asked = Trainer(parse_train_options(bf16 + ["--conv_algorithm", "winograd", "--name", "asked"]))
    layers = [m for m in asked.model.modules() if isinstance(m, Conv3x3)]
    assert layers and all(m.per_call and m.min_pixels == 0 for m in layers)


def test_training_by_winograd_gives_the_direct_step_and_auto_takes_it_on_large_maps(demo_root, tmp_path, monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)  # the tiny res blocks are narrow: switch them all
    monkeypatch.setattr(runtime, "cpu_has_amx", lambda: False)  # auto's choice on an AVX512-BF16 CPU
    train = ["--conv_algorithm", "winograd"]
    bf16 = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path / "o") + ["--amp", "bf16"]))
    auto = [m for m in bf16.model.modules() if isinstance(m, Conv3x3)]  # auto under bf16: on large maps only
    assert auto and all(m.per_call and m.min_pixels == winograd.AUTO_MIN_PIXELS and m.small_maps_by_matmul
                        for m in auto)
    fp32 = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path / "f")))
    auto = [m for m in fp32.model.modules() if isinstance(m, Conv3x3)]  # auto in fp32 too: on large maps only
    assert auto and all(m.per_call and m.min_pixels == winograd.AUTO_MIN_PIXELS for m in auto)
    direct = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path / "a") + ["--conv_algorithm", "direct"]))
    ours = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path / "b") + train))
    layers = [m for m in ours.model.modules() if isinstance(m, Conv3x3)]
    assert layers and all(m.per_call and m.kernels is None and m.min_pixels == 0 and not m.small_maps_by_matmul
                          for m in layers)
    assert not any(m.per_call for m in direct.model.modules() if isinstance(m, Conv3x3))
    _assert_same_steps(direct, ours)
    with torch.no_grad():  # visuals and evaluation in a training run: no graph, same path
        layers[0](torch.randn(1, layers[0].in_channels, 5, 5))


def _assert_same_steps(direct: Trainer, ours: Trainer) -> None:
    """Two training steps of both trainers on one batch give the same pictures and losses (to fp32 rounding)."""
    batch = next(iter(direct.loader))
    for _ in range(2):
        a, b = direct.train_step(batch), ours.train_step(batch)
        torch.testing.assert_close(b.fake, a.fake, rtol=1e-4, atol=1e-5)
        for name, value in (a.g_losses | a.d_losses).items():
            torch.testing.assert_close((b.g_losses | b.d_losses)[name], value, rtol=1e-4, atol=1e-5)


def test_auto_training_winograd_takes_large_maps_only(monkeypatch):
    calls = []
    monkeypatch.setattr(WinogradConv3x3, "apply", lambda *args: calls.append(args[0].shape) or F.conv2d(*args))
    layer = Conv3x3(512, 512)
    layer.use_winograd(per_call=True, min_pixels=512)
    for shape in [(1, 512, 10, 18), (1, 512, 18, 34), (4, 512, 10, 18)]:  # 8x16, 16x32, 4 x 8x16 outputs
        layer(torch.randn(*shape)).sum().backward()
    assert calls == [(1, 512, 18, 34), (4, 512, 10, 18)]


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("with_bias", [True, False])
def test_the_matrix_product_convolution_gives_the_values_and_gradients_of_a_direct_one(padding, with_bias):
    torch.manual_seed(11)
    x = torch.randn(2, 5, 7, 9, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True) if with_bias else None
    ours, reference = matmul_conv3x3(x, weight, bias, padding), F.conv2d(x, weight, bias, padding=padding)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
    inputs = (x, weight, bias) if with_bias else (x, weight)
    grad_out = torch.randn_like(reference)
    for a, b in zip(torch.autograd.grad(ours, inputs, grad_out), torch.autograd.grad(reference, inputs, grad_out),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


def test_the_matrix_product_convolution_under_bf16_autocast_is_as_close_as_the_direct_one():
    torch.manual_seed(12)
    x = torch.randn(1, 64, 8, 16, requires_grad=True)
    weight = (torch.randn(64, 64, 3, 3) / 24).requires_grad_(True)
    exact = F.conv2d(x.double(), weight.double())
    exact_grads = torch.autograd.grad(exact.sum(), (x, weight))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, direct = matmul_conv3x3(x, weight), F.conv2d(x, weight)
    assert ours.dtype == direct.dtype == torch.bfloat16
    grads = torch.autograd.grad(ours.float().sum(), (x, weight))
    direct_grads = torch.autograd.grad(direct.float().sum(), (x, weight))
    assert [g.dtype for g in grads] == [torch.float32, torch.float32]
    for got, baseline, want in zip((ours, *grads), (direct, *direct_grads), (exact, *exact_grads), strict=True):
        error, direct_error = ((v.double() - want).abs().max() for v in (got, baseline))
        assert error <= 2 * direct_error + 1e-6 * want.abs().max()


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_the_split_backward_convolution_gives_the_values_and_gradients_of_a_direct_one(padding, with_bias, batch):
    torch.manual_seed(13)
    x = torch.randn(batch, 5, 7, 9, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True) if with_bias else None
    ours, reference = split_backward_conv3x3(x, weight, bias, padding), F.conv2d(x, weight, bias, padding=padding)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
    inputs = (x, weight, bias) if with_bias else (x, weight)
    grad_out = torch.randn_like(reference).contiguous(memory_format=torch.channels_last)  # any layout comes back
    for a, b in zip(torch.autograd.grad(ours, inputs, grad_out), torch.autograd.grad(reference, inputs, grad_out),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)
    weight_only = torch.autograd.grad(split_backward_conv3x3(x.detach(), weight, bias, padding), weight, grad_out)
    reference_only = torch.autograd.grad(F.conv2d(x.detach(), weight, bias, padding=padding), weight, grad_out)
    torch.testing.assert_close(weight_only[0], reference_only[0], rtol=0, atol=1e-11)


def test_the_split_backward_convolution_under_bf16_autocast_is_as_close_as_the_direct_one():
    torch.manual_seed(14)
    x = torch.randn(1, 64, 10, 18, requires_grad=True)
    weight = (torch.randn(64, 64, 3, 3) / 24).requires_grad_(True)
    bias = torch.randn(64, requires_grad=True)
    exact = F.conv2d(x.double(), weight.double(), bias.double())
    exact_grads = torch.autograd.grad(exact.sum(), (x, weight, bias))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, direct = split_backward_conv3x3(x, weight, bias), F.conv2d(x, weight, bias)
    assert ours.dtype == direct.dtype == torch.bfloat16
    grads = torch.autograd.grad(ours.float().sum(), (x, weight, bias))
    direct_grads = torch.autograd.grad(direct.float().sum(), (x, weight, bias))
    assert [g.dtype for g in grads] == [torch.float32] * 3  # back to the fp32 leaves through the casts
    for got, baseline, want in zip((ours, *grads), (direct, *direct_grads), (exact, *exact_grads), strict=True):
        error, direct_error = ((v.double() - want).abs().max() for v in (got, baseline))
        assert error <= 2 * direct_error + 1e-6 * want.abs().max()


def test_a_split_backward_layer_runs_it_only_where_its_weight_trains(monkeypatch):
    calls = []
    monkeypatch.setattr(winograd.SplitBackwardConv3x3, "apply", lambda *args: calls.append(args[0].shape) or
                        F.conv2d(args[0], args[1], args[2], padding=args[3]))
    narrow, layer = Conv3x3(8, 8), Conv3x3(512, 512)
    assert not narrow.use_split_backward() and layer.use_split_backward() and layer.split_backward
    x = torch.randn(1, 512, 6, 6)
    layer(x).sum().backward()
    with torch.no_grad():
        layer(x)
    layer.requires_grad_(False)
    layer(x.requires_grad_(True)).sum().backward()
    assert calls == [(1, 512, 6, 6)]


def test_auto_trains_small_maps_as_one_matrix_product_in_bf16_and_directly_in_fp32(monkeypatch):
    calls = []
    monkeypatch.setattr(winograd, "matmul_conv3x3",
                        lambda x, weight, bias, padding: calls.append(x.shape) or F.conv2d(x, weight, bias))
    monkeypatch.setattr(WinogradConv3x3, "apply", lambda *args: calls.append("winograd") or F.conv2d(*args))
    layer = Conv3x3(512, 512)
    layer.use_winograd(per_call=True, min_pixels=512, small_maps_by_matmul=True)
    small, large = torch.randn(1, 512, 10, 18), torch.randn(1, 512, 18, 34)  # 8x16 and 16x32 outputs
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(small).float().sum().backward()
        layer(large).float().sum().backward()
    assert calls == [(1, 512, 10, 18), "winograd"]
    layer(small).sum().backward()  # fp32: directly
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        layer(small)  # no gradients (visuals in a training run): directly
    frozen = Conv3x3(512, 512).requires_grad_(False)
    frozen.use_winograd(per_call=True, min_pixels=512, small_maps_by_matmul=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        frozen(small.requires_grad_())
    assert calls == [(1, 512, 10, 18), "winograd"]


@pytest.mark.parametrize("kernel_block", [256, 4])  # 6 output channels in one block, or in blocks of 4 and 2
def test_per_call_inference_gives_a_direct_convolution(kernel_block, monkeypatch):
    monkeypatch.setattr(winograd, "KERNEL_BLOCK", kernel_block)
    torch.manual_seed(7)
    x = torch.randn(2, 5, 7, 9, dtype=torch.float64)
    weight, bias = torch.randn(6, 5, 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    torch.testing.assert_close(winograd.winograd_conv3x3_per_call(x, weight, bias), F.conv2d(x, weight, bias),
                               rtol=0, atol=1e-12)


def test_a_per_call_layer_in_inference_takes_large_maps_and_follows_weight_changes(monkeypatch):
    calls = []
    per_call = winograd.winograd_conv3x3_per_call
    monkeypatch.setattr(winograd, "winograd_conv3x3_per_call", lambda x, *a: calls.append(x.shape) or per_call(x, *a))
    torch.manual_seed(8)
    layer = Conv3x3(512, 512)
    assert layer.use_winograd(per_call=True, min_pixels=512) and layer.kernels is None
    small, large = torch.randn(1, 512, 10, 18), torch.randn(1, 512, 18, 34)  # 8x16 and 16x32 outputs
    with torch.inference_mode():
        assert torch.equal(layer(small), F.conv2d(small, layer.weight, layer.bias))  # direct, bit for bit
        torch.testing.assert_close(layer(large), F.conv2d(large, layer.weight, layer.bias), rtol=1e-4, atol=1e-4)
        layer.weight.mul_(-2)  # nothing prepared goes stale
        torch.testing.assert_close(layer(large), F.conv2d(large, layer.weight, layer.bias), rtol=1e-4, atol=1e-4)
    assert calls == [(1, 512, 18, 34)] * 2
    layer(large).sum().backward()  # with gradients: the differentiable path, not the inference one
    assert calls == [(1, 512, 18, 34)] * 2 and layer.weight.grad is not None


def _switched(opt) -> list[Conv3x3]:
    model = build_model(opt, for_training=False).eval()
    runtime.cast_for_inference(model, opt)
    return [m for m in model.modules() if isinstance(m, Conv3x3)]


def test_auto_runs_fp32_inference_on_the_cpu_by_winograd_per_call_on_large_maps(monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
    arch = ["--label_nc", "4", "--ngf", "4", "--n_downsample_global", "1", "--n_blocks_global", "1"]
    auto = _switched(_test_opt(arch))
    assert auto and all(m.per_call and m.min_pixels == winograd.AUTO_MIN_PIXELS and m.kernels is None for m in auto)
    assert not any(m.per_call or m.kernels is not None for m in _switched(_test_opt(arch + ["--conv_algorithm",
                                                                                           "direct"])))
    assert not any(m.per_call or m.kernels is not None for m in _switched(_test_opt(arch + ["--compile"])))
    asked = _switched(_test_opt(arch + ["--conv_algorithm", "winograd"]))  # asked for: kernels kept
    assert asked and all(m.kernels is not None and not m.per_call for m in asked)
    bf16 = _switched(_test_opt(arch + ["--amp", "bf16"]))
    assert bf16 and all(m.kernels is not None and not m.per_call for m in bf16)


def _test_opt(extra):
    return parse_test_options(["--dataroot", ".", "--device", "cpu", *extra])


def _train_opt(extra):
    return parse_train_options(["--dataroot", ".", "--device", "cpu", *extra])


def test_auto_chooses_winograd_on_the_cpu_only_and_not_with_compile(monkeypatch):
    assert conv_algorithm(_test_opt(["--amp", "bf16"])) == "winograd"
    assert conv_algorithm(_train_opt(["--amp", "bf16"])) == "winograd"  # training too
    assert conv_algorithm(_train_opt([])) == "winograd"  # fp32 training (on large maps: use_training_algorithm)
    assert conv_algorithm(_train_opt(["--amp", "bf16", "--conv_algorithm", "direct"])) == "direct"
    assert conv_algorithm(_test_opt([])) == "winograd"  # fp32 inference, per call (cast_for_inference)
    assert conv_algorithm(_test_opt(["--compile"])) == "direct"
    assert conv_algorithm(_test_opt(["--amp", "bf16", "--compile"])) == "direct"
    assert conv_algorithm(_test_opt(["--amp", "bf16", "--conv_algorithm", "direct"])) == "direct"
    assert conv_algorithm(_test_opt(["--conv_algorithm", "winograd"])) == "winograd"
    monkeypatch.setattr("synth.options.parse.resolve_device_name", lambda device, gpu_ids: "cuda:0")
    assert conv_algorithm(parse_test_options(["--dataroot", ".", "--device", "cuda"])) == "direct"  # cuDNN's choice


def test_winograd_on_a_gpu_is_refused_with_a_clear_line(monkeypatch):
    monkeypatch.setattr("synth.options.parse.resolve_device_name", lambda device, gpu_ids: "cuda:0")
    with pytest.raises(OptionError, match="--conv_algorithm winograd runs on the CPU only"):
        parse_test_options(["--dataroot", ".", "--device", "cuda", "--conv_algorithm", "winograd"])


def _pictures(page) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p), np.int16) for p in sorted((page.parent / "images").glob("*.png"))}


@pytest.mark.slow
def test_test_py_with_winograd_makes_the_pictures_of_direct_convolutions(demo_root, tmp_path, monkeypatch):
    Trainer(parse_train_options(tiny_flags(demo_root, tmp_path) + ["--max_iters", "2"])).train()
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)  # the demo's res blocks are narrow: switch them all
    seen = []
    load = synth.inference.load_generator
    monkeypatch.setattr(synth.inference, "load_generator", lambda opt: seen.append(load(opt)) or seen[-1])
    base = ["--name", "tiny", "--checkpoints_dir", str(tmp_path), "--dataroot", str(demo_root), "--device", "cpu",
            "--nThreads", "0", "--no_progress", "--how_many", "3"]

    def pictures(tag: str, *flags: str) -> dict[str, np.ndarray]:
        opt = parse_test_options([*base, "--results_dir", str(tmp_path / tag), *flags])
        return _pictures(synth.inference.run_inference(opt))

    fp32 = {"direct": pictures("a", "--conv_algorithm", "direct"), "winograd": pictures("b", "--conv_algorithm",
                                                                                        "winograd")}
    bf16 = {"direct": pictures("c", "--amp", "bf16", "--conv_algorithm", "direct"), "auto": pictures("d", "--amp",
                                                                                                    "bf16")}
    switched = [m for m in seen[-1].modules() if isinstance(m, Conv3x3)]
    assert switched and all(m.kernels is not None for m in switched)  # auto under bf16 took Winograd
    monkeypatch.setattr(runtime, "AUTO_MIN_PIXELS", 0)  # the demo's maps are small: take them all
    fp32["auto"] = pictures("e")
    per_call = [m for m in seen[-1].modules() if isinstance(m, Conv3x3)]
    assert per_call and all(m.per_call and m.kernels is None for m in per_call)  # auto in fp32: per call
    assert all(m.kernels is None for m in seen[0].modules() if isinstance(m, Conv3x3))
    assert any("synthesized_image" in k for k in fp32["direct"])
    for name, picture in fp32["direct"].items():
        assert np.abs(picture - fp32["winograd"][name]).max() <= 1, name  # fp32 rounding only
        assert np.abs(picture - fp32["auto"][name]).max() <= 1, name
        bf16_error = np.abs(bf16["direct"][name] - picture).mean()
        winograd_error = np.abs(bf16["auto"][name] - picture).mean()
        assert winograd_error <= 1.5 * bf16_error + 0.5, (name, winograd_error, bf16_error)


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 6, 6), (1, 4, 1, 1), (3, 2, 8, 5)])
@pytest.mark.parametrize("band_bytes", [2 ** 23, 1])  # the whole map in one band, or one tile row per band
def test_a_frozen_padded_layer_gives_the_values_and_input_gradients_of_a_direct_convolution(shape, band_bytes,
                                                                                            monkeypatch):
    monkeypatch.setattr(winograd, "BAND_BYTES", band_bytes)
    torch.manual_seed(9)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    weight, bias = torch.randn(6, shape[1], 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    kernels = transform_kernels(weight)
    ours, reference = FrozenWinogradConv3x3.apply(x, kernels, bias, 1), F.conv2d(x, weight, bias, padding=1)
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
    grad_out = torch.randn_like(reference)
    (ours_grad,), (reference_grad,) = (torch.autograd.grad(y, x, grad_out) for y in (ours, reference))
    torch.testing.assert_close(ours_grad, reference_grad, rtol=0, atol=1e-11)
    torch.testing.assert_close(winograd_conv3x3(x.detach(), kernels, bias, padding=1), reference.detach(),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(winograd.winograd_conv3x3_per_call(x.detach(), weight, None, padding=1),
                               F.conv2d(x.detach(), weight, padding=1), rtol=0, atol=1e-12)


def test_a_frozen_layer_with_kept_kernels_passes_gradients_to_its_input_and_follows_loaded_weights(monkeypatch):
    calls = []
    frozen_apply = FrozenWinogradConv3x3.apply
    monkeypatch.setattr(FrozenWinogradConv3x3, "apply", lambda x, *a: calls.append(x.shape) or frozen_apply(x, *a))
    torch.manual_seed(10)
    layer = Conv3x3(8, 8, padding=1).requires_grad_(False)
    assert layer.use_winograd(min_channels=9) is False and layer.kernels is None  # narrower than asked
    assert layer.use_winograd(min_pixels=30, min_channels=8) and layer.kernels is not None
    small = torch.randn(1, 8, 5, 5, requires_grad=True)  # 25 output pixels: direct, bit for bit
    assert torch.equal(layer(small), F.conv2d(small, layer.weight, layer.bias, padding=1)) and calls == []
    large = torch.randn(1, 8, 6, 6, requires_grad=True)
    ours, reference = layer(large), F.conv2d(large, layer.weight, layer.bias, padding=1)
    assert calls == [(1, 8, 6, 6)]
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.autograd.grad(ours.sum(), large)[0],
                               torch.autograd.grad(reference.sum(), large)[0], rtol=1e-5, atol=1e-5)
    layer.load_state_dict({"weight": -2 * layer.weight, "bias": layer.bias})  # the kept kernels follow
    with torch.no_grad():
        torch.testing.assert_close(layer(large), F.conv2d(large, layer.weight, layer.bias, padding=1),
                                   rtol=1e-5, atol=1e-5)
    layer.weight.requires_grad_(True)  # a trainable layer cannot use kernels that would go stale
    with pytest.raises(RuntimeError, match="freeze the layer"):
        layer(large)


def test_vgg19_runs_its_wide_convolutions_by_winograd_with_the_loss_and_gradient_of_direct_ones():
    torch.manual_seed(11)
    direct, ours = VGG19Features(), VGG19Features()
    ours.load_state_dict(direct.state_dict())
    assert ours.use_winograd(min_pixels=0) == 8  # conv3_2..conv5_1: both widths 256 or more
    wide = [m for m in ours.modules() if isinstance(m, Conv3x3) and m.kernels is not None]
    assert all(min(m.in_channels, m.out_channels) >= vgg.WINOGRAD_MIN_CHANNELS for m in wide)
    fake, real = torch.rand(1, 3, 48, 64, requires_grad=True), torch.rand(1, 3, 48, 64)
    losses = [VGGLoss(net)(fake, real) for net in (direct, ours)]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-6)
    grads = [torch.autograd.grad(loss, fake)[0] for loss in losses]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-6)



def test_vgg19_by_winograd_under_bf16_autocast_is_as_close_to_fp32_as_direct_bf16():
    torch.manual_seed(12)
    direct, ours = VGG19Features(), VGG19Features()
    ours.load_state_dict(direct.state_dict())
    assert ours.use_winograd(min_pixels=0) == 8
    fake, real = torch.rand(1, 3, 48, 64, requires_grad=True), torch.rand(1, 3, 48, 64)
    exact = torch.autograd.grad(VGGLoss(direct)(fake, real), fake)[0]
    errors = []
    for net in (direct, ours):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = VGGLoss(net)(fake, real)
        grad = torch.autograd.grad(loss, fake)[0]
        assert grad.dtype == torch.float32
        errors.append(((grad - exact).norm() / exact.norm()).item())
    assert 0 < errors[1] < 1.5 * errors[0] + 1e-3, errors  # bf16 rounding, not a wrong transform


@pytest.mark.parametrize("by_winograd", [False, True])
def test_vgg19_cast_to_bf16_once_gives_autocasts_loss_and_gradient_bit_for_bit(by_winograd):
    torch.manual_seed(13)
    fp32 = VGG19Features()
    if by_winograd:
        assert fp32.use_winograd(min_pixels=0) == 8
    cast = copy.deepcopy(fp32).to(torch.bfloat16)  # the kept kernels are a buffer: cast with the weights
    kernels = [m.kernels for m in cast.modules() if isinstance(m, Conv3x3) and m.kernels is not None]
    assert len(kernels) == (8 if by_winograd else 0) and all(k.dtype == torch.bfloat16 for k in kernels)
    fake, real = torch.rand(1, 3, 48, 64, requires_grad=True), torch.rand(1, 3, 48, 64)
    results = []
    for net in (fp32, cast):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = VGGLoss(net)(fake, real)
        results.append((loss, torch.autograd.grad(loss, fake)[0]))
    assert torch.equal(results[1][0], results[0][0]) and torch.equal(results[1][1], results[0][1])

def _vgg_trainer(demo_root, run_dir, extra):
    weights = run_dir / "vgg19.pth"
    if not weights.exists():  # random weights in torchvision's key layout (features only)
        run_dir.mkdir(parents=True, exist_ok=True)
        torch.save({f"features.{k.split('.', 1)[1]}": v for k, v in VGG19Features().state_dict().items()}, weights)
    name = "_".join(flag.strip("-") for flag in extra) or "auto"
    flags = [f for f in tiny_flags(demo_root, run_dir, name=name) if f != "--no_vgg_loss"]
    return Trainer(parse_train_options(flags + ["--vgg_weights", str(weights), *extra]))


def test_training_runs_vgg19s_wide_layers_by_winograd_with_kept_kernels_and_the_direct_step(
        demo_root, tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_amx", lambda: False)

    def vgg_layers(trainer):
        return [m for m in trainer.model.vgg_loss.modules() if isinstance(m, Conv3x3)]

    for extra, dtype in (([], torch.float32), (["--amp", "bf16"], torch.bfloat16)):  # bf16: cast once
        layers = vgg_layers(_vgg_trainer(demo_root, tmp_path, extra))
        wide = [m for m in layers if m.kernels is not None]
        assert len(wide) == 8 and all(not m.per_call and m.min_pixels == winograd.AUTO_MIN_PIXELS for m in wide)
        assert all(m.weight.dtype == dtype for m in layers) and all(m.kernels.dtype == dtype for m in wide)
    assert not any(m.kernels is not None or m.per_call
                   for m in vgg_layers(_vgg_trainer(demo_root, tmp_path, ["--conv_algorithm", "direct"])))
    monkeypatch.setattr(runtime, "cpu_has_amx", lambda: True)
    assert not any(m.kernels is not None for m in vgg_layers(_vgg_trainer(demo_root, tmp_path, ["--name", "amx"])))
    monkeypatch.setattr(runtime, "cpu_has_amx", lambda: False)
    direct = _vgg_trainer(demo_root, tmp_path, ["--conv_algorithm", "direct", "--name", "d"])
    ours = _vgg_trainer(demo_root, tmp_path, ["--conv_algorithm", "winograd"])  # every map size
    assert sum(m.kernels is not None for m in vgg_layers(ours)) == 8
    _assert_same_steps(direct, ours)
