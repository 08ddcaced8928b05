"""The Fourier texture layer: its bank, the per-instance least-squares read-out, and how the generator and the
encoders use it (``--fourier_texture``)."""

import math

import pytest
import torch

from synth.models.networks import fourier_texture as ft
from synth.models.networks.fourier_texture import FourierBank, FourierTextureLayer, amplitudes, fourier_coefficients
from synth.models.networks.generator_modulated import ModulatedGenerator
from synth.models.networks.hierarchical_encoder import BandCodeEncoder, HierarchicalEncoder
from synth.models.networks.segments import frequency_bands, index_segments, pool_instances

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


def test_coefficients_recover_amplitude_and_phase_of_a_wave_per_instance_from_its_centroid():
    bank = FourierBank.for_cell(8)
    segments = _two_objects()
    signal = torch.stack([_wave(5 / 32, 45, 1.0), _wave(8 / 32, 90, -2.0, 0.1)]).unsqueeze(1)
    index = index_segments(segments)
    coefficients = fourier_coefficients(signal, index, bank)
    assert coefficients.shape == (index.count, 64)  # background of both images + the two objects
    wave = {3: 2 * 4 + 1, 4: 5 * 4 + 2}  # (frequency step, direction) of each object's wave
    truth = {3: (0.2, 1.0, 5 / 32, 45, (20.5, 17.5)), 4: (0.1, -2.0, 8 / 32, 90, (22.5, 29.5))}  # centroid (x, y)
    for row, ident in enumerate(index.id_of().tolist()):
        if ident == 0:
            continue
        k = wave[ident]
        amplitude, phase, frequency, angle, (cx, cy) = truth[ident]
        a = math.radians(angle)
        phase += 2 * math.pi * frequency * (cx * math.cos(a) + cy * math.sin(a))  # the wave's phase at the centroid
        # a sin(t' + p) = a cos(p) sin(t') + a sin(p) cos(t'), t' the phase measured from the centroid
        assert coefficients[row, k] == pytest.approx(amplitude * math.cos(phase), abs=0.01)
        assert coefficients[row, 32 + k] == pytest.approx(amplitude * math.sin(phase), abs=0.01)
        others = amplitudes(coefficients[row:row + 1])[0].clone()
        others[k] = 0
        assert float(others.max()) < 0.01


def test_phase_shifts_compose_and_invert():
    coefficients = torch.randn(3, 8)
    phases = torch.rand(3, 4, dtype=torch.float64) * 100
    there = ft.shift_phases(coefficients, phases)
    assert torch.allclose(ft.shift_phases(there, -phases), coefficients, atol=1e-5)
    assert torch.allclose(amplitudes(there), amplitudes(coefficients), atol=1e-5)
    half = phases / 2
    assert torch.allclose(ft.shift_phases(ft.shift_phases(coefficients, half), half), there, atol=1e-5)


def test_a_code_moved_to_another_instance_draws_the_same_pattern_around_its_centre():
    """Even for a stripe between two bank frequencies (which the fit renders as a beat of both), the pattern
    painted on another instance of the same shape is the fitted one translated, not another stretch of the beat."""
    bank = FourierBank.for_cell(8)
    layer = FourierTextureLayer(bank, 8)
    segments = torch.zeros(2, 1, SIZE, SIZE, dtype=torch.long)
    segments[0, 0, 6:30, 8:34] = 3
    segments[1, 0, 19:43, 21:47] = 3  # the same square 13 px down and right: half a 1/26-cycle beat away
    index = index_segments(segments)
    signal = torch.stack([_wave(5.5 / 32, 0, 0.4)] * 2).unsqueeze(1)
    coefficients = fourier_coefficients(signal, index, bank)
    rows = {(b, i): r for r, (b, i) in enumerate(zip(index.image_of().tolist(), index.id_of().tolist(),
                                                     strict=True))}
    moved = coefficients.clone()
    moved[rows[(1, 3)]] = coefficients[rows[(0, 3)]]
    painted = layer.contrast(index, moved, torch.float32)
    source, target = painted[0, 0, 6:30, 8:34], painted[1, 0, 19:43, 21:47]
    assert float((source - signal[0, 0, 6:30, 8:34]).abs().max()) < 0.08  # the fit is close to the wave
    assert torch.allclose(target, source, atol=1e-4)


def test_the_fit_skips_each_instances_outer_ring_and_a_sliver_gets_no_texture():
    bank = FourierBank.for_cell(8)
    segments = _two_objects()
    segments[0, 0, 40, 5:45] = 9  # a one-pixel line: no pixel of it has all its neighbours in it
    index = index_segments(segments)
    signal = torch.stack([_wave(5 / 32, 45, 1.0)] * 2).unsqueeze(1)
    outlined = signal.clone()
    ring = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    ring[6:30, 8:34] = True
    ring[7:29, 9:33] = False
    outlined[0, 0][ring] = -0.8  # a dark outline on object 3's edge
    plain, with_outline = fourier_coefficients(signal, index, bank), fourier_coefficients(outlined, index, bank)
    row = {i: r for r, i in enumerate(index.id_of().tolist()) if index.image_of()[r] == 0}
    assert torch.allclose(with_outline[row[3]], plain[row[3]], atol=1e-5)
    assert bool(torch.isfinite(plain).all()) and float(plain[row[9]].abs().max()) == 0


def test_constant_signal_has_no_texture_and_neither_caching_nor_chunking_changes_the_fit(monkeypatch):
    bank = FourierBank.for_cell(8)
    index = index_segments(_two_objects())
    flat = torch.full((2, 1, SIZE, SIZE), 0.3)
    assert float(fourier_coefficients(flat, index, bank).abs().max()) < 1e-4
    signal = torch.stack([_wave(4 / 32, 0, 0.5), _wave(7 / 32, 135, 0.0)]).unsqueeze(1)
    whole = fourier_coefficients(signal, index, bank)
    kept = set(index.derived)  # the masks' normal equations, kept for the next fit on this numbering
    assert any("fourier_fit" in key for key in kept)
    assert torch.equal(fourier_coefficients(signal, index, bank), whole) and set(index.derived) == kept
    monkeypatch.setattr(ft, "CHUNK_PIXELS", 100)
    fresh = index_segments(_two_objects())
    assert torch.allclose(fourier_coefficients(signal, fresh, bank), whole, atol=1e-5)


def _fine_fit(image: torch.Tensor, index, bank: FourierBank) -> torch.Tensor:
    return fourier_coefficients(frequency_bands(image, index, 8)["fine"], index, bank)


def test_texture_layer_replaces_the_images_own_band_with_the_codes():
    bank = FourierBank.for_cell(8)
    layer = FourierTextureLayer(bank, 8)
    segments = _two_objects()
    index = index_segments(segments)
    old = torch.stack([_wave(7 / 32, 0, 0.0, 0.25), _wave(9 / 32, 45, 1.0, 0.25)]).unsqueeze(1)
    image = ((0.4 + 0.2 * torch.rand(2, 3, 1, 1)) * (1 + old) - 1).expand(2, 3, SIZE, SIZE)
    new = torch.stack([_wave(5 / 32, 45, 1.0), _wave(8 / 32, 90, -2.0, 0.1)]).unsqueeze(1)
    codes = fourier_coefficients(new, index, bank)
    contrast = layer.contrast(index, codes, torch.float32)
    assert float((contrast - new)[segments > 0].abs().max()) < 0.03
    out = layer(image, index, codes)
    assert out.shape == image.shape and float(out.abs().max()) <= 1
    objects = index.id_of() > 0
    before, after = amplitudes(_fine_fit(image, index, bank)), amplitudes(_fine_fit(out, index, bank))
    old_waves, new_waves = torch.tensor([4 * 4 + 0, 6 * 4 + 1]), torch.tensor([2 * 4 + 1, 5 * 4 + 2])
    drawn = after[objects].gather(1, new_waves.view(-1, 1)).squeeze(1)
    wanted = amplitudes(codes[objects]).gather(1, new_waves.view(-1, 1)).squeeze(1)
    assert torch.allclose(drawn, wanted, rtol=0.25), (drawn, wanted)
    kept = after[objects].gather(1, old_waves.view(-1, 1)).squeeze(1)
    had = before[objects].gather(1, old_waves.view(-1, 1)).squeeze(1)
    assert bool((kept < 0.3 * had).all()), (kept, had)  # the image's own stripes are gone, to first order
    assert layer(image, index, None) is image


def test_generator_texture_layer_is_the_last_fine_layer_and_owns_its_band():
    torch.manual_seed(0)
    plain = ModulatedGenerator(5, 3, ngf=4, n_downsampling=3, n_blocks=1)
    textured = ModulatedGenerator(5, 3, ngf=4, n_downsampling=3, n_blocks=1, texture=True)
    textured.load_state_dict(plain.state_dict())  # the texture layer has no parameters
    last = len(textured.num_codes) - 1
    assert list(textured.texture_banks) == [last] and textured.layer_groups[last] == "fine"
    assert textured.num_codes[:-1] == plain.num_codes and textured.num_codes[-1] == 64
    assert last in textured.group_layers["fine"]
    bank = textured.texture_banks[last]
    segments = torch.zeros(2, 1, SIZE, SIZE, dtype=torch.long)
    segments[:, :, 8:40, 8:40] = 2
    index = index_segments(segments)
    x = torch.randn(2, 5, SIZE, SIZE)
    codes = [torch.randn(4, n) * 0.1 for n in plain.num_codes]
    with torch.no_grad():
        untextured = plain(x, segments, codes)
        flattened = textured(x, segments, [*codes, torch.zeros(4, 64)])
        striped_codes = torch.zeros(4, 64).index_fill_(1, torch.tensor([9]), 0.3)
        striped = textured(x, segments, [*codes, striped_codes])
    own = _fine_fit(untextured, index, bank).abs().max()
    assert float(_fine_fit(flattened, index, bank).abs().max()) < 0.2 * float(own)  # zero codes: a flat band
    assert _fine_fit(striped, index, bank)[:, 9].tolist() == pytest.approx([0.3] * 4, abs=0.06)
    colours = pool_instances(flattened, index), pool_instances(untextured, index)
    assert torch.allclose(*colours, atol=0.02)  # the band changed, not the instances' colours


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
