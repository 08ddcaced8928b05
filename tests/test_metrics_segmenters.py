"""Segmenters: DRN-D-105 and UPerNet-101 have exactly the parameter names and shapes of the published models
(fyu/drn's DRNSeg, CSAILVision's encoder/decoder files), load such state dicts, and fail with one clear line when
weights are missing; torchvision DeepLabV3 and TorchScript alternatives."""

import pytest
import torch
from torch import nn

from synth.commands.runner import run_cli
from synth.core.errors import CheckpointError, OptionError, WeightsMissingError
from synth.metrics.segmenters import SEGMENTERS, load_segmenter
from synth.metrics.segmenters.drn import DRNSeg
from synth.metrics.segmenters.upernet import UPerNetSegmenter

# names and shapes read from fyu/drn (drn.py: DRN arch 'D', drn_d_105 = Bottleneck [1,1,3,4,23,3,1,1];
# segment.py: DRNSeg.base = DRN children without avgpool/fc, seg = 1x1 conv, up = depthwise ConvTranspose2d 16/8)
DRN_EXPECTED = {
    "base.0.0.weight": (16, 3, 7, 7),
    "base.0.1.weight": (16,),
    "base.0.1.running_var": (16,),
    "base.1.0.weight": (16, 16, 3, 3),
    "base.1.1.bias": (16,),
    "base.2.0.weight": (32, 16, 3, 3),
    "base.3.0.conv1.weight": (64, 32, 1, 1),
    "base.3.0.conv2.weight": (64, 64, 3, 3),
    "base.3.0.conv3.weight": (256, 64, 1, 1),
    "base.3.0.downsample.0.weight": (256, 32, 1, 1),
    "base.3.0.downsample.1.running_mean": (256,),
    "base.3.2.bn3.weight": (256,),
    "base.4.0.downsample.0.weight": (512, 256, 1, 1),
    "base.4.3.conv2.weight": (128, 128, 3, 3),
    "base.5.0.downsample.0.weight": (1024, 512, 1, 1),
    "base.5.22.conv3.weight": (1024, 256, 1, 1),
    "base.6.0.downsample.0.weight": (2048, 1024, 1, 1),
    "base.6.2.bn3.running_mean": (2048,),
    "base.7.0.weight": (512, 2048, 3, 3),
    "base.7.1.weight": (512,),
    "base.8.0.weight": (512, 512, 3, 3),
    "base.8.1.running_var": (512,),
    "seg.weight": (19, 512, 1, 1),
    "seg.bias": (19,),
    "up.weight": (19, 1, 16, 16),
}
DRN_D_105_PARAMS = 54_302_915  # counted from the architecture: 54,285,862 in base, 9,747 in seg, 4,864 in up

# names and shapes read from CSAILVision/semantic-segmentation-pytorch (models/resnet.py: deep-stem ResNet-101;
# models/models.py: Resnet wrapper, UPerNet(fc_dim=2048, fpn_dim=512) as built for 'upernet')
ENCODER_EXPECTED = {
    "conv1.weight": (64, 3, 3, 3),
    "bn1.weight": (64,),
    "conv2.weight": (64, 64, 3, 3),
    "bn2.running_mean": (64,),
    "conv3.weight": (128, 64, 3, 3),
    "bn3.running_var": (128,),
    "layer1.0.conv1.weight": (64, 128, 1, 1),
    "layer1.0.downsample.0.weight": (256, 128, 1, 1),
    "layer1.0.downsample.1.weight": (256,),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer2.3.conv3.weight": (512, 128, 1, 1),
    "layer3.0.downsample.0.weight": (1024, 512, 1, 1),
    "layer3.22.bn3.weight": (1024,),
    "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
    "layer4.2.conv3.weight": (2048, 512, 1, 1),
}
DECODER_EXPECTED = {
    "ppm_conv.0.0.weight": (512, 2048, 1, 1),
    "ppm_conv.0.1.weight": (512,),
    "ppm_conv.3.1.running_var": (512,),
    "ppm_last_conv.0.weight": (512, 4096, 3, 3),
    "ppm_last_conv.1.bias": (512,),
    "fpn_in.0.0.weight": (512, 256, 1, 1),
    "fpn_in.1.0.weight": (512, 512, 1, 1),
    "fpn_in.2.0.weight": (512, 1024, 1, 1),
    "fpn_in.2.1.running_mean": (512,),
    "fpn_out.0.0.0.weight": (512, 512, 3, 3),
    "fpn_out.2.0.1.bias": (512,),
    "conv_last.0.0.weight": (512, 2048, 3, 3),
    "conv_last.0.1.weight": (512,),
    "conv_last.1.weight": (150, 512, 1, 1),
    "conv_last.1.bias": (150,),
}
ENCODER_PARAMS = 42_623_936
DECODER_PARAMS = 40_590_486


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def drn():
    return DRNSeg(19)


@pytest.fixture(scope="module")
def upernet():
    return UPerNetSegmenter(150)


def test_drn_d_105_names_and_shapes(drn):
    shapes = _shapes(drn)
    for key, shape in DRN_EXPECTED.items():
        assert shapes.get(key) == shape, key
    assert {k.split(".")[0] for k in shapes} == {"base", "seg", "up"}
    assert {k.split(".")[1] for k in shapes if k.startswith("base.")} == {str(i) for i in range(9)}
    assert len([k for k in shapes if k.startswith("base.5.") and k.endswith("conv1.weight")]) == 23
    assert sum(p.numel() for p in drn.parameters()) == DRN_D_105_PARAMS
    # dilations of DRN-D: levels 5 and 6 dilate 2 and 4, level 7 dilates 2
    assert drn.base[5][0].conv2.dilation == (2, 2) and drn.base[6][2].conv2.dilation == (4, 4)
    assert drn.base[7][0].dilation == (2, 2) and drn.base[8][0].dilation == (1, 1)
    assert drn.base[3][0].conv2.stride == (2, 2) and drn.base[5][0].conv2.stride == (1, 1)


def test_upernet101_names_and_shapes(upernet):
    enc, dec = _shapes(upernet.encoder), _shapes(upernet.decoder)
    for key, shape in ENCODER_EXPECTED.items():
        assert enc.get(key) == shape, key
    for key, shape in DECODER_EXPECTED.items():
        assert dec.get(key) == shape, key
    assert not any(k.startswith(("fc.", "avgpool")) for k in enc)
    assert {k.split(".")[0] for k in dec} == {"ppm_conv", "ppm_last_conv", "fpn_in", "fpn_out", "conv_last"}
    assert len([k for k in enc if k.startswith("layer3.") and k.endswith("conv1.weight")]) == 23
    assert sum(p.numel() for p in upernet.encoder.parameters()) == ENCODER_PARAMS
    assert sum(p.numel() for p in upernet.decoder.parameters()) == DECODER_PARAMS


def test_drn_loads_an_old_dataparallel_checkpoint(tmp_path, drn):
    # PyTorch < 0.4.1 checkpoints have no num_batches_tracked; DataParallel adds 'module.'
    state = {f"module.{k}": v.clone() + 0.5 for k, v in drn.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    path = tmp_path / "drn-d-105_ms_cityscapes.pth"
    torch.save(state, path)
    seg = load_segmenter("drn_d_105", str(path), 19)
    assert torch.equal(seg.net.seg.bias, state["module.seg.bias"])
    with torch.no_grad():
        out = seg(torch.rand(1, 3, 36, 60))  # not a multiple of 8: logits are cropped to the input
    assert out.shape == (1, 19, 36, 60)
    torch.save({"state_dict": {"seg.weight": torch.zeros(3, 512, 1, 1)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError) as info:
        load_segmenter("drn_d_105", str(tmp_path / "other.pth"), 19)
    assert "\n" not in str(info.value) and "missing" in str(info.value)


def test_upernet_loads_encoder_and_decoder_files(tmp_path, upernet):
    folder = tmp_path / "ade20k-resnet101-upernet"
    folder.mkdir()
    torch.save(upernet.encoder.state_dict(), folder / "encoder_epoch_50.pth")
    torch.save(upernet.decoder.state_dict(), folder / "decoder_epoch_50.pth")
    seg = load_segmenter("upernet101", str(folder), 150)
    assert torch.equal(seg.net.decoder.conv_last[1].bias, upernet.decoder.conv_last[1].bias)
    with torch.no_grad():
        assert seg(torch.rand(1, 3, 40, 36)).shape == (1, 150, 40, 36)
    (folder / "decoder_epoch_50.pth").unlink()
    with pytest.raises(WeightsMissingError) as info:
        load_segmenter("upernet101", str(folder), 150)
    msg = str(info.value)
    assert "\n" not in msg and "decoder_epoch_50.pth" in msg and str(folder) in msg


def test_missing_segmenter_weights_say_which_file_goes_where(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsMissingError) as info:
        load_segmenter("drn_d_105", None, 19)
    msg = str(info.value)
    assert "drn-d-105_ms_cityscapes.pth" in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert "--seg_weights" in msg and "\n" not in msg
    with pytest.raises(WeightsMissingError, match="encoder_epoch_50.pth"):
        load_segmenter("upernet101", None, 150)

    def body():
        load_segmenter("drn_d_105", str(tmp_path / "nope.pth"), 19)

    assert run_cli(body) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "nope.pth" in err


def test_registry_lists_the_segmenters():
    assert {"drn_d_105", "upernet101", "deeplabv3_resnet50", "deeplabv3_resnet101", "torchscript"} <= set(
        SEGMENTERS.names())
    with pytest.raises(OptionError, match="--seg_model"):
        load_segmenter("segformer", None, 19)


def test_torchvision_deeplab_round_trip(tmp_path):
    from torchvision.models.segmentation import deeplabv3_resnet50

    net = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=5, aux_loss=True).eval()
    torch.save(net.state_dict(), tmp_path / "dl.pth")
    seg = load_segmenter("deeplabv3_resnet50", str(tmp_path / "dl.pth"), 5)
    with torch.no_grad():
        assert seg(torch.rand(1, 3, 40, 48)).shape == (1, 5, 40, 48)
    with pytest.raises(WeightsMissingError, match="needs --seg_weights"):
        load_segmenter("deeplabv3_resnet101", None, 19)


class _Tiny(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.conv(x)}


def test_torchscript_segmenter(tmp_path):
    path = tmp_path / "seg.pt"
    torch.jit.script(_Tiny(7)).save(str(path))
    seg = load_segmenter("torchscript", str(path), 7)
    with torch.no_grad():
        assert seg(torch.rand(2, 3, 20, 30)).shape == (2, 7, 20, 30)
    wrong = load_segmenter("torchscript", str(path), 19)
    with pytest.raises(CheckpointError, match="expected"):
        wrong(torch.rand(1, 3, 8, 8))
    with pytest.raises(WeightsMissingError):
        load_segmenter("torchscript", str(tmp_path / "missing.pt"), 7)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a TorchScript module"):
        load_segmenter("torchscript", str(tmp_path / "junk.pt"), 7)


def _with_sync_bn_buffers(state: dict) -> dict:
    """A state dict as CSAIL's SynchronizedBatchNorm saved it: three extra buffers per BN, no num_batches_tracked."""
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        out[key] = value.clone()
        if key.endswith(".running_mean"):
            prefix = key.removesuffix(".running_mean")
            out[f"{prefix}._tmp_running_mean"] = torch.full_like(value, 7.0)
            out[f"{prefix}._tmp_running_var"] = torch.full_like(value, 7.0)
            out[f"{prefix}._running_iter"] = torch.tensor(1)
    return out


def test_upernet_loads_files_saved_with_synchronized_batchnorm(tmp_path, upernet):
    folder = tmp_path / "ade20k-resnet101-upernet"
    folder.mkdir()
    enc = _with_sync_bn_buffers({k: v + 0.25 if v.is_floating_point() else v
                                 for k, v in upernet.encoder.state_dict().items()})
    assert "bn1._tmp_running_var" in enc and "bn1.num_batches_tracked" not in enc
    torch.save(enc, folder / "encoder_epoch_50.pth")
    torch.save(_with_sync_bn_buffers(upernet.decoder.state_dict()), folder / "decoder_epoch_50.pth")
    seg = load_segmenter("upernet101", str(folder), 150)
    assert torch.equal(seg.net.encoder.bn1.running_mean, enc["bn1.running_mean"])
    assert torch.equal(seg.net.encoder.conv1.weight, enc["conv1.weight"])
    # anything else stays refused, naming the file and the first keys
    enc["bn1.some_other_buffer"] = torch.zeros(64)
    enc["conv1._tmp_running_mean"] = torch.zeros(64)  # conv1 is no BatchNorm layer
    torch.save(enc, folder / "encoder_epoch_50.pth")
    with pytest.raises(CheckpointError) as info:
        load_segmenter("upernet101", str(folder), 150)
    msg = str(info.value)
    assert "\n" not in msg and "encoder_epoch_50.pth" in msg and "2 unexpected" in msg
    assert "bn1.some_other_buffer" in msg and "conv1._tmp_running_mean" in msg


def test_drn_loads_a_file_with_synchronized_batchnorm_buffers(tmp_path, drn):
    state = _with_sync_bn_buffers(drn.state_dict())
    path = tmp_path / "drn-d-105_ms_cityscapes.pth"
    torch.save(state, path)
    seg = load_segmenter("drn_d_105", str(path), 19)
    assert torch.equal(seg.net.base[0][1].running_var, state["base.0.1.running_var"])
    del state["base.0.1.running_var"]
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_segmenter("drn_d_105", str(path), 19)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "1 missing (e.g. base.0.1.running_var)" in msg
