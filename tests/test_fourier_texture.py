"""The Fourier texture layer: its bank, the per-instance least-squares read-out, and how the generator and the
encoders use it (``--fourier_texture``)."""

import math

import pytest
import torch

from models.networks import fourier_texture as ft
from models.networks.fourier_texture import FourierBank, FourierTextureLayer, amplitudes, fourier_coefficients
from models.networks.generator_modulated import ModulatedGenerator
from models.networks.hierarchical_encoder import BandCodeEncoder, HierarchicalEncoder
from models.networks.segments import frequency_bands, index_segments

SIZE = 48


def _wave(frequency: float, angle_deg: float, phase: float, amplitude: float = 0.2) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(SIZE, dtype=torch.float64), torch.arange(SIZE, dtype=torch.float64),
                            indexing="ij")
    a = math.radians(angle_deg)
    return (amplitude * torch.sin(2 * math.pi * frequency * (xs * math.cos(a) + ys * math.sin(a)) + phase)).float()


def _two_objects() -> torch.Tensor:
    """Two images, background 0, one square object each (ids 3 and 4); id 7 has no pixel anywhere."""
    segments = torch.zeros(2, 1, SIZE, SIZE, dtype=torch.long)
    segments[0, 0, 6:30, 8:34] = 3
    segments[1, 0, 16:44, 10:36] = 4
    return segments


def test_bank_frequencies_follow_the_cell_and_stay_below_the_cap():
    bank = FourierBank.for_cell(8)
    assert bank.frequencies == tuple(k / 32 for k in range(3, 11))
    assert bank.waves == 8 * 4 and bank.num_codes == 64
    assert max(FourierBank.for_cell(4).frequencies) <= ft.MAX_FREQUENCY < 10 / 16
    features = bank.features(SIZE, SIZE)
    assert features.shape == (64, SIZE, SIZE)
    assert torch.allclose(features[:32] ** 2 + features[32:] ** 2, torch.ones(32, SIZE, SIZE), atol=1e-5)


def test_coefficients_recover_amplitude_and_phase_of_a_wave_per_instance():
    bank = FourierBank.for_cell(8)
    segments = _two_objects()
    signal = torch.stack([_wave(5 / 32, 45, 1.0), _wave(8 / 32, 90, -2.0, 0.1)]).unsqueeze(1)
    index = index_segments(segments)
    coefficients = fourier_coefficients(signal, index, bank)
    assert coefficients.shape == (index.count, 64)  # background of both images + the two objects
    wave = {3: 2 * 4 + 1, 4: 5 * 4 + 2}  # (frequency step, direction) of each object's wave
    truth = {3: (0.2, 1.0), 4: (0.1, -2.0)}
    for row, ident in enumerate(index.id_of().tolist()):
        if ident == 0:
            continue
        k = wave[ident]
        amplitude, phase = truth[ident]
        # a sin(t + p) = a cos(p) sin(t) + a sin(p) cos(t)
        assert coefficients[row, k] == pytest.approx(amplitude * math.cos(phase), abs=0.01)
        assert coefficients[row, 32 + k] == pytest.approx(amplitude * math.sin(phase), abs=0.01)
        others = amplitudes(coefficients[row:row + 1])[0].clone()
        others[k] = 0
        assert float(others.max()) < 0.01


def test_constant_signal_has_no_texture_and_chunking_does_not_change_the_fit(monkeypatch):
    bank = FourierBank.for_cell(8)
    index = index_segments(_two_objects())
    flat = torch.full((2, 1, SIZE, SIZE), 0.3)
    assert float(fourier_coefficients(flat, index, bank).abs().max()) < 1e-4
    signal = torch.stack([_wave(4 / 32, 0, 0.5), _wave(7 / 32, 135, 0.0)]).unsqueeze(1)
    whole = fourier_coefficients(signal, index, bank)
    monkeypatch.setattr(ft, "CHUNK_PIXELS", 100)
    assert torch.allclose(fourier_coefficients(signal, index, bank), whole, atol=1e-5)


def test_texture_layer_paints_each_instances_coefficients_and_multiplies_brightness():
    bank = FourierBank.for_cell(8)
    layer = FourierTextureLayer(bank)
    segments = _two_objects()
    index = index_segments(segments)
    signal = torch.stack([_wave(5 / 32, 45, 1.0), _wave(8 / 32, 90, -2.0, 0.1)]).unsqueeze(1)
    contrast = layer.contrast(index, fourier_coefficients(signal, index, bank), torch.float32)
    inside = segments > 0
    assert float((contrast - signal)[inside].abs().max()) < 0.02
    image = torch.full((2, 3, SIZE, SIZE), -0.2)
    out = layer(image, contrast)
    assert torch.allclose(out, ((image + 1) * (1 + contrast) - 1).clamp(-1, 1))
    assert layer(image, None) is image


def test_generator_texture_layer_is_the_last_fine_layer_and_zero_codes_change_nothing():
    torch.manual_seed(0)
    plain = ModulatedGenerator(5, 3, ngf=4, n_downsampling=3, n_blocks=1)
    textured = ModulatedGenerator(5, 3, ngf=4, n_downsampling=3, n_blocks=1, texture=True)
    textured.load_state_dict(plain.state_dict())  # the texture layer has no parameters
    last = len(textured.num_codes) - 1
    assert list(textured.texture_banks) == [last] and textured.layer_groups[last] == "fine"
    assert textured.num_codes[:-1] == plain.num_codes and textured.num_codes[-1] == 64
    assert last in textured.group_layers["fine"]
    segments = torch.zeros(2, 1, SIZE, SIZE, dtype=torch.long)
    segments[:, :, 8:40, 8:40] = 2
    x = torch.randn(2, 5, SIZE, SIZE)
    codes = [torch.randn(4, n) * 0.1 for n in plain.num_codes]
    zero_texture = [*codes, torch.zeros(4, 64)]
    assert torch.allclose(textured(x, segments, zero_texture), plain(x, segments, codes), atol=1e-6)
    striped = [*codes, torch.zeros(4, 64).index_fill_(1, torch.tensor([9]), 0.3)]
    assert not torch.allclose(textured(x, segments, striped), plain(x, segments, codes), atol=1e-3)


def test_band_encoder_texture_codes_are_the_fine_bands_coefficients():
    g = ModulatedGenerator(5, 3, ngf=4, n_downsampling=3, n_blocks=1, texture=True)
    enc = BandCodeEncoder(3, g.num_codes, g.layer_groups, g.size_multiple, feat_num=3, nef=4, n_downsampling=3,
                          banks=g.texture_banks)
    segments = _two_objects()
    index = index_segments(segments)
    image = (torch.rand(2, 3, 1, 1) * 0.5 - 0.2) * (1 + _wave(6 / 32, 0, 0.3)).expand(2, 1, SIZE, SIZE)
    codes = enc(image, index)
    assert [tuple(c.shape) for c in codes] == [(index.count, n) for n in g.num_codes]
    expected = fourier_coefficients(frequency_bands(image, index, g.size_multiple)["fine"], index,
                                    g.texture_banks[len(g.num_codes) - 1])
    assert torch.equal(codes[-1], expected)
    assert isinstance(enc.affines[-1], torch.nn.Identity)
    objects = index.id_of() > 0
    assert (amplitudes(codes[-1][objects]).argmax(1) == 3 * 4 + 0).all()  # 6/32 cycles per px, vertical stripes


@pytest.mark.parametrize("group_dim", [0, 3])
def test_hierarchical_encoder_reads_texture_off_a_learned_map_that_starts_at_the_fine_band(group_dim):
    g = ModulatedGenerator(5, 3, ngf=4, n_downsampling=3, n_blocks=1, texture=True)
    enc = HierarchicalEncoder(3, g.num_codes, g.layer_groups, width=4, group_dim=group_dim, banks=g.texture_banks,
                              cell=g.size_multiple)
    segments = _two_objects()
    index = index_segments(segments)
    image = (torch.rand(2, 3, SIZE, SIZE) * 2 - 1).requires_grad_(False)
    codes = enc(image, index)
    assert [tuple(c.shape) for c in codes] == [(index.count, n) for n in g.num_codes]
    expected = fourier_coefficients(frequency_bands(image, index, g.size_multiple)["fine"], index,
                                    g.texture_banks[len(g.num_codes) - 1])
    assert torch.allclose(codes[-1], expected, atol=1e-6)
    codes[-1].square().sum().backward()
    assert enc.texture_map[-1].weight.grad is not None and float(enc.texture_map[-1].weight.grad.abs().sum()) > 0
    fine_without_texture = [i for i in g.group_layers["fine"] if i not in g.texture_banks]
    assert enc.heads["fine"][-1].out_features == (group_dim or sum(g.num_codes[i] for i in fine_without_texture))


def test_retrieval_sees_texture_amplitudes_not_phase():
    from synth.ghfeat import retrieval_part

    g = ModulatedGenerator(5, 3, ngf=4, n_downsampling=3, n_blocks=1, texture=True)
    bank = g.texture_banks[len(g.num_codes) - 1]
    index = index_segments(_two_objects())
    waves = [fourier_coefficients(torch.stack([_wave(5 / 32, 45, p)] * 2).unsqueeze(1), index, bank)
             for p in (0.0, 2.0)]
    assert not torch.allclose(waves[0], waves[1], atol=1e-2)
    last = len(g.num_codes) - 1
    assert torch.allclose(retrieval_part(g, last, waves[0]), retrieval_part(g, last, waves[1]), atol=0.01)
    other = torch.randn(3, g.num_codes[0])
    assert retrieval_part(g, 0, other) is other
