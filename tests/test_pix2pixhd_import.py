"""Importing pix2pixHD checkpoints: tiny stand-ins with pix2pixHD's module naming, converted into ours."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synth.core.errors import CheckpointError
from synth.models.networks import GlobalGenerator, LocalEnhancer, MultiscaleDiscriminator
from synth.models.pix2pixhd_import import (
    convert_pix2pixhd_discriminator,
    convert_pix2pixhd_generator,
    load_pix2pixhd_file,
)

# ---- stand-ins that store layers under pix2pixHD's state-dict names ------------------------------------------


def make_norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.InstanceNorm2d(channels, affine=False)


class RefResBlock(nn.Module):
    def __init__(self, dim: int, norm: str) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            make_norm(norm, dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            make_norm(norm, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def ref_global_layers(in_nc: int, out_nc: int, ngf: int, n_down: int, n_blocks: int, norm: str) -> list:
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, 7), make_norm(norm, ngf), nn.ReLU(True)]
    for i in range(n_down):
        c = ngf * 2**i
        layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), make_norm(norm, 2 * c), nn.ReLU(True)]
    layers += [RefResBlock(ngf * 2**n_down, norm) for _ in range(n_blocks)]
    for i in range(n_down):
        c = ngf * 2 ** (n_down - i)
        layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), make_norm(norm, c // 2), nn.ReLU(True)]
    return layers + [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_nc, 7), nn.Tanh()]


class RefGlobal(nn.Module):
    def __init__(self, *args) -> None:
        super().__init__()
        self.model = nn.Sequential(*ref_global_layers(*args))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class RefLocal(nn.Module):
    def __init__(self, in_nc, out_nc, ngf, n_down_g, n_blocks_g, n_enh, n_blocks_local, norm="instance") -> None:
        super().__init__()
        self.n_enh = n_enh
        self.model = nn.Sequential(*ref_global_layers(in_nc, out_nc, ngf * 2**n_enh, n_down_g, n_blocks_g, norm)[:-3])
        for n in range(1, n_enh + 1):
            c = ngf * 2 ** (n_enh - n)
            first = [
                nn.ReflectionPad2d(3),
                nn.Conv2d(in_nc, c, 7),
                make_norm(norm, c),
                nn.ReLU(True),
                nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
                make_norm(norm, 2 * c),
                nn.ReLU(True),
            ]
            second = [RefResBlock(2 * c, norm) for _ in range(n_blocks_local)]
            second += [nn.ConvTranspose2d(2 * c, c, 3, 2, 1, output_padding=1), make_norm(norm, c), nn.ReLU(True)]
            if n == n_enh:
                second += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_nc, 7), nn.Tanh()]
            setattr(self, f"model{n}_1", nn.Sequential(*first))
            setattr(self, f"model{n}_2", nn.Sequential(*second))
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [x]
        for _ in range(self.n_enh):
            pyramid.append(self.pool(pyramid[-1]))
        out = self.model(pyramid[-1])
        for n in range(1, self.n_enh + 1):
            encoded = getattr(self, f"model{n}_1")(pyramid[self.n_enh - n])
            out = getattr(self, f"model{n}_2")(encoded + out)
        return out


def ref_patch_stages(in_nc: int, ndf: int, n_layers: int) -> list[list[nn.Module]]:
    stages = [[nn.Conv2d(in_nc, ndf, 4, 2, 2), nn.LeakyReLU(0.2, True)]]
    nf = ndf
    for n in range(1, n_layers + 1):
        prev, nf = nf, min(nf * 2, 512)
        stages.append(
            [nn.Conv2d(prev, nf, 4, 2 if n < n_layers else 1, 2), nn.InstanceNorm2d(nf), nn.LeakyReLU(0.2, True)]
        )
    return stages + [[nn.Conv2d(nf, 1, 4, 1, 2)]]


class RefMultiscaleD(nn.Module):
    """pix2pixHD naming: scale{i}_layer{j} (or layer{i}); scale num_D-1 judges the full-resolution input."""

    def __init__(self, in_nc: int, ndf: int, n_layers: int, num_d: int, interm: bool) -> None:
        super().__init__()
        self.num_d, self.n_stages, self.interm = num_d, n_layers + 2, interm
        for i in range(num_d):
            stages = ref_patch_stages(in_nc, ndf, n_layers)
            if interm:
                for j, stage in enumerate(stages):
                    setattr(self, f"scale{i}_layer{j}", nn.Sequential(*stage))
            else:
                setattr(self, f"layer{i}", nn.Sequential(*[layer for stage in stages for layer in stage]))
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        results = []
        for i in range(self.num_d):
            index = self.num_d - 1 - i
            if self.interm:
                feats, h = [], x
                for j in range(self.n_stages):
                    h = getattr(self, f"scale{index}_layer{j}")(h)
                    feats.append(h)
                results.append(feats)
            else:
                results.append([getattr(self, f"layer{index}")(x)])
            x = self.pool(x)
        return results


def randomise(net: nn.Module) -> nn.Module:
    torch.manual_seed(1)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif tensor.is_floating_point():
                tensor.normal_(0, 0.1)
    return net.eval()


# ---- tests ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_global_generator_import_gives_same_output(norm):
    ref = randomise(RefGlobal(5, 3, 8, 2, 2, norm))
    ours = GlobalGenerator(5, 3, ngf=8, n_downsampling=2, n_blocks=2, norm=norm).eval()
    ours.load_state_dict(convert_pix2pixhd_generator(ref.state_dict(), ours), strict=True)
    x = torch.randn(2, 5, 16, 16, dtype=torch.float64)
    with torch.no_grad():  # in float64: a mapping error shows, the rounding of two equal normalisations does not
        torch.testing.assert_close(ours.double()(x), ref.double()(x), atol=1e-12, rtol=0)


def test_local_enhancer_import_gives_same_output():
    ref = randomise(RefLocal(5, 3, 4, 2, 2, 1, 2))
    ours = LocalEnhancer(
        5, 3, ngf=4, n_downsample_global=2, n_blocks_global=2, n_local_enhancers=1, n_blocks_local=2
    ).eval()
    ours.load_state_dict(convert_pix2pixhd_generator(ref.state_dict(), ours), strict=True)
    x = torch.randn(1, 5, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours.double()(x), ref.double()(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("interm", [True, False])
def test_discriminator_import_gives_same_outputs_full_resolution_first(interm):
    ref = randomise(RefMultiscaleD(6, 8, 2, 2, interm))
    ours = MultiscaleDiscriminator(6, ndf=8, n_layers=2, num_D=2, get_interm_feat=interm).eval()
    ours.load_state_dict(convert_pix2pixhd_discriminator(ref.state_dict(), ours), strict=True)
    x = torch.randn(2, 6, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected, got = ref.double()(x), ours.double()(x)
    assert [len(s) for s in got] == [len(s) for s in expected]
    for ref_scale, our_scale in zip(expected, got, strict=True):
        for a, b in zip(ref_scale, our_scale, strict=True):
            torch.testing.assert_close(b, a, atol=1e-12, rtol=0)


def test_flat_pix2pixhd_discriminator_loads_into_interm_feature_one():
    ref = randomise(RefMultiscaleD(6, 8, 2, 2, interm=False))
    ours = MultiscaleDiscriminator(6, ndf=8, n_layers=2, num_D=2, get_interm_feat=True)
    ours.load_state_dict(convert_pix2pixhd_discriminator(ref.state_dict(), ours), strict=True)


def test_data_parallel_prefix_and_stale_instance_norm_stats_are_accepted():
    ref = randomise(RefGlobal(5, 3, 8, 2, 1, "instance"))
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}
    state["module.model.2.running_mean"] = torch.zeros(8)
    ours = GlobalGenerator(5, 3, ngf=8, n_downsampling=2, n_blocks=1)
    ours.load_state_dict(convert_pix2pixhd_generator(state, ours), strict=True)


def test_shape_mismatch_names_key_and_both_shapes():
    ref = RefGlobal(5, 3, 8, 2, 1, "instance")
    ours = GlobalGenerator(5, 3, ngf=4, n_downsampling=2, n_blocks=1)
    with pytest.raises(CheckpointError, match=r"'model\.1\.weight' has shape \(8, 5, 7, 7\).*\(4, 5, 7, 7\)"):
        convert_pix2pixhd_generator(ref.state_dict(), ours)


def test_unexpected_and_missing_keys_are_named():
    ref = RefGlobal(5, 3, 8, 2, 1, "instance")
    ours = GlobalGenerator(5, 3, ngf=8, n_downsampling=2, n_blocks=1)
    extra = {**ref.state_dict(), "model.99.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"model\.99\.weight"):
        convert_pix2pixhd_generator(extra, ours)
    lacking = {k: v for k, v in ref.state_dict().items() if k != "model.1.bias"}
    with pytest.raises(CheckpointError, match=r"stem\.1\.bias"):
        convert_pix2pixhd_generator(lacking, ours)
    d_state = RefMultiscaleD(6, 8, 2, 3, True).state_dict()
    with pytest.raises(CheckpointError, match=r"scale2_layer0"):
        convert_pix2pixhd_discriminator(d_state, MultiscaleDiscriminator(6, 8, 2, num_D=2))


def test_load_pix2pixhd_file(tmp_path):
    path = tmp_path / "latest_net_G.pth"
    torch.save(RefGlobal(5, 3, 4, 1, 1, "instance").state_dict(), path)
    assert "model.1.weight" in load_pix2pixhd_file(path)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="broken.pth"):
        load_pix2pixhd_file(broken)
    with pytest.raises(CheckpointError, match="absent.pth"):
        load_pix2pixhd_file(tmp_path / "absent.pth")
