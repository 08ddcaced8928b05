"""fp32 CPU inference runs the decoder's transposed convolutions channels-last, with the same pictures."""

import copy

import pytest
import torch
from torch import nn

from synth import runtime
from synth.assembly import build_model
from synth.options import parse_test_options

CL = torch.channels_last
ARCH = ["--label_nc", "4", "--ngf", "4", "--n_downsample_global", "2", "--n_blocks_global", "1"]


def _test_opt(extra: list[str]):
    return parse_test_options(["--dataroot", ".", "--device", "cpu", *ARCH, *extra])


def test_fp32_inference_runs_transposed_convolutions_channels_last_and_gives_the_same_contiguous_output(capsys):
    opt = _test_opt(["--verbose"])
    model = build_model(opt, for_training=False).eval()
    generator = model.networks()["G"]
    reference = copy.deepcopy(generator)
    runtime.cast_for_inference(model, opt)
    ups = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == 2 and all(not m.weight.is_contiguous() and m.weight.is_contiguous(memory_format=CL) for m in ups)
    assert "2 transposed convolutions channels-last" in capsys.readouterr().out
    layouts = []
    for layer in ups:
        layer.register_forward_hook(lambda _m, args, _out: layouts.append(args[0].is_contiguous(memory_format=CL)))
    in_channels = next(m for m in generator.modules() if isinstance(m, nn.Conv2d)).in_channels
    x = torch.randn(1, in_channels, 64, 96)
    with torch.inference_mode():
        out, expected = generator(x), reference(x)
    assert layouts == [True, True]  # each transposed convolution saw a channels-last input
    assert out.is_contiguous() and out.shape == (1, 3, 64, 96)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert expected.std() > 0.01  # a picture, not a constant


@pytest.mark.parametrize("flags", [["--conv_algorithm", "direct"], ["--amp", "bf16"], ["--channels_last"],
                                   ["--compile"]])
def test_layouts_stay_as_they_are_where_it_was_not_measured_or_not_asked_for(flags):
    opt = _test_opt(flags)
    assert not runtime.channels_last_upsampling_pays(opt)
    model = build_model(opt, for_training=False).eval()
    runtime.cast_for_inference(model, opt)
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert ups and all(m.weight.is_contiguous() for m in ups)


def test_outputs_of_every_shape_come_back_contiguous():
    channels_last = torch.randn(1, 3, 4, 4).contiguous(memory_format=CL)
    out = runtime._contiguous_output(nn.Identity(), (), (channels_last, [channels_last], {"a": channels_last}, 3))
    assert out[0].is_contiguous() and out[1][0].is_contiguous() and out[2]["a"].is_contiguous() and out[3] == 3
    assert torch.equal(out[0], channels_last)
