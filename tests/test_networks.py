"""Networks: pix2pixHD parameter counts, output shapes, the local enhancer's parts, VGG19 loading."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torchvision
from torch import nn

from synth.core.errors import CheckpointError, OptionError, WeightsMissingError
from synth.models.networks import (
    GlobalGenerator,
    LocalEnhancer,
    MultiscaleDiscriminator,
    NLayerDiscriminator,
    VGG19Features,
    build_discriminator,
    build_generator,
    init_weights,
    load_vgg19_weights,
    norm_layer,
)


def count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def options(**overrides) -> SimpleNamespace:
    base = dict(
        netG="global",
        netD="multiscale",
        ngf=8,
        n_downsample_global=2,
        n_blocks_global=1,
        n_local_enhancers=1,
        n_blocks_local=1,
        norm="instance",
        output_nc=3,
        ndf=8,
        n_layers_D=2,
        num_D=2,
        no_ganFeat_loss=False,
    )
    return SimpleNamespace(**{**base, **overrides})


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: GlobalGenerator(36, 3, 64, 4, 9), 182_546_755),
        (lambda: GlobalGenerator(39, 3, 64, 4, 9), 182_556_163),
        (lambda: LocalEnhancer(36, 3, 32, 4, 9, 1, 3), 182_857_059),
        (lambda: MultiscaleDiscriminator(39, 64, 3, num_D=2, get_interm_feat=True), 5_603_202),
        (lambda: MultiscaleDiscriminator(39, 64, 3, num_D=3, get_interm_feat=True), 8_404_803),
        (lambda: VGG19Features(), 12_944_960),
    ],
)
def test_parameter_counts_match_pix2pixhd(build, expected):
    with torch.device("meta"):
        assert count(build()) == expected


def test_norm_layer_choices():
    assert isinstance(norm_layer("instance")(4), nn.InstanceNorm2d)
    assert not norm_layer("instance")(4).affine
    assert norm_layer("batch")(4).affine
    assert isinstance(norm_layer("none")(4), nn.Identity)
    with pytest.raises(OptionError, match="group"):
        norm_layer("group")


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_global_generator_shape_and_range(norm):
    net = GlobalGenerator(5, 3, ngf=8, n_downsampling=2, n_blocks=1, norm=norm)
    assert net.size_multiple == 4
    out = net(torch.randn(2, 5, 16, 24))
    assert out.shape == (2, 3, 16, 24)
    assert out.abs().max() <= 1
    assert net.features(torch.randn(1, 5, 16, 24)).shape == (1, 8, 16, 24)


def test_local_enhancer_shape_and_parameter_split():
    net = LocalEnhancer(5, 3, ngf=4, n_downsample_global=2, n_blocks_global=1, n_local_enhancers=2, n_blocks_local=1)
    assert net.size_multiple == 16
    assert net(torch.randn(1, 5, 32, 48)).shape == (1, 3, 32, 48)
    local_ids = {id(p) for p in net.local_parameters()}
    global_ids = {id(p) for p in net.global_parameters()}
    assert local_ids and global_ids and not local_ids & global_ids
    assert local_ids | global_ids == {id(p) for p in net.parameters()}
    assert not any(name.startswith("global_net") for name, _ in net.enhancers.named_parameters())
    assert not any(".head." in name for name in net.global_net.state_dict())


def test_load_global_generator_into_local_enhancer():
    trained = GlobalGenerator(5, 3, ngf=8, n_downsampling=2, n_blocks=1)
    local = LocalEnhancer(5, 3, ngf=4, n_downsample_global=2, n_blocks_global=1, n_local_enhancers=1)
    local.load_global_generator(trained.state_dict())
    x = torch.randn(1, 5, 8, 8)
    torch.testing.assert_close(local.global_net(x), trained.features(x))


def test_load_global_generator_mismatch_names_the_key():
    trained = GlobalGenerator(5, 3, ngf=4, n_downsampling=2, n_blocks=1)
    local = LocalEnhancer(5, 3, ngf=4, n_downsample_global=2, n_blocks_global=1, n_local_enhancers=1)
    with pytest.raises(CheckpointError, match=r"stem\.1\.weight"):
        local.load_global_generator(trained.state_dict())


def patch_sizes(size: int) -> list[int]:
    """Spatial sizes after each stage of a 3-layer PatchGAN: k4 p2 convs at strides 2, 2, 2, 1, 1."""
    sizes = []
    for stride in (2, 2, 2, 1, 1):
        size = size // 2 + 1 if stride == 2 else size + 1
        sizes.append(size)
    return sizes


@pytest.mark.parametrize("interm", [True, False])
def test_multiscale_discriminator_outputs_full_resolution_first(interm):
    net = MultiscaleDiscriminator(6, ndf=8, n_layers=3, num_D=3, get_interm_feat=interm)
    outputs = net(torch.randn(2, 6, 64, 64))
    assert len(outputs) == 3
    for scale, size in zip(outputs, (64, 32, 16), strict=True):
        expected = patch_sizes(size)
        if interm:
            assert [f.shape[-1] for f in scale] == expected
            assert [f.shape[1] for f in scale] == [8, 16, 32, 64, 1]
        else:
            assert len(scale) == 1
        assert scale[-1].shape == (2, 1, expected[-1], expected[-1])


def test_multiscale_discriminator_runs_channels_last_on_the_cpu_with_the_contiguous_outputs_and_gradients():
    torch.manual_seed(2)
    net = MultiscaleDiscriminator(6, ndf=8, n_layers=3, num_D=2)
    x = torch.randn(1, 6, 40, 56, requires_grad=True)
    seen = []
    net.scales[0].layers[0].register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    ours = net(x)
    assert seen == [True]
    reference = [net.scales[0](x.contiguous()), net.scales[1](net.downsample(x.contiguous()))]
    loss_ours = sum(f.float().square().mean() for scale in ours for f in scale)
    loss_reference = sum(f.float().square().mean() for scale in reference for f in scale)
    torch.testing.assert_close(loss_ours, loss_reference, rtol=1e-5, atol=1e-6)
    for a, b in zip(torch.autograd.grad(loss_ours, [x, *net.parameters()]),
                    torch.autograd.grad(loss_reference, [x, *net.parameters()]), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_nlayer_discriminator_structure_independent_of_interm_feat():
    with_feats = NLayerDiscriminator(4, 8, 2, get_interm_feat=True).state_dict()
    without = NLayerDiscriminator(4, 8, 2, get_interm_feat=False).state_dict()
    assert list(with_feats) == list(without)


def test_builders_use_registry_and_options():
    g = build_generator(options(), 6)
    assert isinstance(g, GlobalGenerator) and g.size_multiple == 4
    local = build_generator(options(netG="local"), 6)
    assert isinstance(local, LocalEnhancer) and local.size_multiple == 8
    d = build_discriminator(options(no_ganFeat_loss=True), 9)
    assert isinstance(d, MultiscaleDiscriminator) and len(d.scales) == 2
    assert len(d(torch.randn(1, 9, 32, 32))[0]) == 1
    with pytest.raises(OptionError, match="nope"):
        build_generator(options(netG="nope"), 6)


def test_init_weights_follows_pix2pixhd():
    torch.manual_seed(0)
    net = init_weights(GlobalGenerator(3, 3, ngf=64, n_downsampling=1, n_blocks=1, norm="batch"))
    conv = net.blocks[0].body[1].weight
    assert abs(conv.std().item() - 0.02) < 0.002
    bn = net.stem[2]
    assert torch.all(bn.bias == 0) and abs(bn.weight.mean().item() - 1) < 0.01


def test_vgg_weights_missing_message(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsMissingError) as info:
        load_vgg19_weights(None)
    message = str(info.value)
    assert "\n" not in message
    assert "vgg19-dcbb9e9d.pth" in message and str(tmp_path / "checkpoints") in message
    assert "--vgg_weights" in message and "--no_vgg_loss" in message


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A full torchvision vgg19 state dict on disk, and that model's ``features[:30]`` for reference."""
    path = tmp_path_factory.mktemp("hub") / "vgg19.pth"
    torch.manual_seed(0)
    model = torchvision.models.vgg19(weights=None)
    torch.save(model.state_dict(), path)
    return path, model.features[:30].eval()


def test_vgg_features_from_torchvision_file(vgg_file):
    path, reference = vgg_file
    vgg = VGG19Features.from_weights(str(path))
    x = torch.randn(1, 3, 32, 32)
    outs = vgg(x)
    assert [o.shape[1] for o in outs] == [64, 128, 256, 512, 512]
    with torch.no_grad():
        torch.testing.assert_close(outs[-1], reference(x))
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training


def test_vgg_default_path_from_hub_dir(vgg_file, tmp_path, monkeypatch):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth").symlink_to(vgg_file[0])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert "slice5.28.weight" in load_vgg19_weights(None)


def test_vgg_wrong_file_names_it(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_vgg19_weights(str(bad))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_vgg19_weights(str(garbage))
