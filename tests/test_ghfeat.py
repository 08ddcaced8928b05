"""GH-Feat at tiny size: the modulated generator's layer groups and codes, per-instance pooling, the encoders'
code shapes, frozen-generator training (R1 included), eval determinism, style mixing and the retrieval/probe
helpers."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synth import ghfeat as gf
from synth.commands.ghfeat import main as ghfeat_main
from synth.core.errors import OptionError
from synth.inference import load_generator
from synth.models.ghfeat_model import GHFeatModel
from synth.models.networks import generator_modulated
from synth.models.networks.generator_modulated import (
    ModulatedGenerator,
    full_resolution_masks,
    instance_weights,
    layer_group,
)
from synth.models.networks.hierarchical_encoder import BandCodeEncoder, HierarchicalEncoder, PooledCodeEncoder
from synth.models.networks.segments import index_segments, paint, pool_instances
from synth.options import parse_test_options, parse_train_options
from synth.trainer import Trainer
from tests.conftest import tiny_flags, unique_calls


def _segments() -> torch.Tensor:
    """Two 16x16 instance maps: image 0 has ids 0, 1, 2000 (2000 a single pixel); image 1 has 0 and 3000."""
    seg = torch.zeros(2, 1, 16, 16, dtype=torch.int64)
    seg[0, 0, 8:, :] = 1
    seg[0, 0, 3, 5] = 2000
    seg[1, 0, 4:12, 4:12] = 3000
    return seg


def test_layer_group_convention():
    assert [layer_group(k, 3) for k in range(4)] == ["fine", "mid", "mid", "coarse"]
    assert [layer_group(k, 2) for k in range(3)] == ["fine", "mid", "coarse"]
    assert [layer_group(k, 4) for k in range(5)] == ["fine", "fine", "mid", "coarse", "coarse"]
    g = ModulatedGenerator(6, 3, ngf=4, n_downsampling=3, n_blocks=2)
    assert g.layer_levels == [0, 1, 2, 3, 3, 3, 3, 3, 2, 1, 0]
    assert g.layer_groups == ["fine", "mid", "mid", "coarse", "coarse", "coarse", "coarse", "coarse", "mid", "mid",
                              "fine"]
    assert g.num_codes == [8, 16, 32, 64, 64, 64, 64, 64, 32, 16, 8]
    assert sorted(i for layers in g.group_layers.values() for i in layers) == list(range(11))


def test_modulated_generator_survives_deepcopy():
    """Each norm knows its layer number itself, so a copied generator (EMA copies, pickled models) still runs."""
    import copy

    g = ModulatedGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1)
    seg, x = _segments(), torch.randn(2, 6, 16, 16)
    codes = [torch.randn(5, n) for n in g.num_codes]
    assert torch.equal(copy.deepcopy(g)(x, seg, codes), g(x, seg, codes))


def test_pooling_ignores_empty_masks_and_keeps_tiny_instances_at_every_level():
    seg = _segments()
    index = index_segments(seg)
    assert index.keys.tolist() == [0, 1, 2000, (1 << 16) + 0, (1 << 16) + 3000]  # absent ids take no row
    values = torch.randn(2, 3, 16, 16)
    pooled = pool_instances(values, index)
    assert torch.allclose(pooled[2], values[0, :, 3, 5])
    assert torch.allclose(pooled[4], values[1, :, 4:12, 4:12].mean(dim=(1, 2)))
    coarse = pool_instances(torch.randn(2, 3, 2, 2), index)  # a 1-pixel instance still gets its cell's vector
    assert torch.isfinite(coarse).all() and coarse.abs().sum(1).gt(0).all()
    weights = instance_weights(index, 3, torch.float32)
    assert [w.shape[-1] for w in weights] == [8, 4, 2]
    one_hot = torch.zeros(2, index.count, 16, 16).scatter_(1, index.index, 1.0)
    assert torch.equal(weights[0], F.avg_pool2d(one_hot, 2))  # level 1 without building the full-size masks
    for w in weights:  # shares of each cell sum to one; each instance keeps its area at every level
        assert torch.allclose(w.sum(1), torch.ones_like(w.sum(1)))
        assert torch.allclose(w.sum(dim=(0, 2, 3)) * (16 // w.shape[-1]) ** 2, one_hot.sum(dim=(0, 2, 3)))


def test_full_resolution_layers_paint_codes_exactly_as_the_masks_would(monkeypatch):
    """Without gradients (inference, editing) level 0 is a gather; with them the one-hot masks, whose code gradient
    the training runs were validated with. Both give the same map, bit for bit."""
    g = ModulatedGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1)
    seg = _segments()
    index = index_segments(seg)
    codes = [torch.randn(index.count, n) for n in g.num_codes]
    one_hot = torch.zeros(2, index.count, 16, 16).scatter_(1, index.index, 1.0)
    assert torch.equal(full_resolution_masks(index, torch.float32), one_hot)
    for norm in (g.stem.norm, g.up[-1].norm):  # the level-0 layers
        assert g.layer_levels[norm.layer_number] == 0
        expected = torch.einsum("bnhw,nc->bchw", one_hot, codes[norm.layer_number])
        with torch.no_grad():
            assert torch.equal(g.modulations(seg, codes, torch.float32)(norm), expected)
        trained = [c.clone().requires_grad_() for c in codes]
        painted = g.modulations(seg, trained, torch.float32)(norm)
        assert torch.equal(painted, expected)
        painted.pow(2).sum().backward()
        reference = codes[norm.layer_number].clone().requires_grad_()
        torch.einsum("bnhw,nc->bchw", one_hot, reference).pow(2).sum().backward()
        assert torch.equal(trained[norm.layer_number].grad, reference.grad)
    built = []
    monkeypatch.setattr(generator_modulated, "full_resolution_masks", lambda *a: built.append(1) or one_hot)
    with torch.no_grad():
        g(torch.randn(2, 6, 16, 16), seg, codes)
    assert built == []  # inference never builds the [B, N, H, W] masks
    g(torch.randn(2, 6, 16, 16), seg, [c.clone().requires_grad_() for c in codes])
    assert built == [1]  # training builds them once per forward, for both level-0 layers


def test_encoders_emit_one_code_per_instance_and_layer():
    g = ModulatedGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1)
    seg, image = _segments(), torch.randn(2, 3, 16, 16)
    for encoder in (HierarchicalEncoder(3, g.num_codes, g.layer_groups, width=4),
                    PooledCodeEncoder(3, g.num_codes, feat_num=3, nef=4, n_downsampling=2)):
        codes = encoder(image, seg)
        assert [tuple(c.shape) for c in codes] == [(5, n) for n in g.num_codes]
        out = g(torch.randn(2, 6, 16, 16), seg, codes)
        assert out.shape == (2, 3, 16, 16)


def test_band_encoder_groups_see_only_their_band():
    """A colour shift that keeps the luminance changes only the coarse codes; flattening every instance to its
    mean colour changes only the mid and fine ones."""
    g = ModulatedGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1)
    enc = BandCodeEncoder(3, g.num_codes, g.layer_groups, g.size_multiple, feat_num=3, nef=4, n_downsampling=2)
    seg, image = _segments(), torch.rand(2, 3, 16, 16) * 1.6 - 0.8
    base = enc.group_vectors(image, seg)
    no_luma = torch.tensor([0.587, -0.299, 0.0]).view(1, 3, 1, 1)
    shifted = enc.group_vectors(image + 0.1 * no_luma, seg)
    index = index_segments(seg)
    flat = enc.group_vectors(paint(pool_instances(image, index), index), seg)
    assert not torch.allclose(shifted["coarse"], base["coarse"])
    assert torch.allclose(flat["coarse"], base["coarse"], atol=1e-6)
    for group in ("mid", "fine"):
        assert torch.allclose(shifted[group], base[group], atol=1e-5)
        assert not torch.allclose(flat[group], base[group])
    codes = enc(image, seg)
    assert [tuple(c.shape) for c in codes] == [(5, n) for n in g.num_codes]


def test_band_encoder_keeps_brightness_apart_from_chromaticity():
    """Scaling flat instance colours moves the coarse vector's last (brightness) coordinate by log2(k) / 3 and
    leaves the chromaticity coordinates (hue) nearly as they were."""
    g = ModulatedGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1)
    enc = BandCodeEncoder(3, g.num_codes, g.layer_groups, g.size_multiple, feat_num=4, nef=4, n_downsampling=2)
    seg, unit = _segments(), torch.rand(2, 3, 16, 16) * 0.6 + 0.4
    index = index_segments(seg)
    flat = paint(pool_instances(unit, index), index)
    base, darker = enc.group_vectors(flat * 2 - 1, seg), enc.group_vectors(flat * 0.5 * 2 - 1, seg)
    assert torch.allclose(darker["coarse"][:, -1] - base["coarse"][:, -1], torch.full((5,), -1 / 3), atol=0.03)
    assert torch.allclose(darker["coarse"][:, :-1], base["coarse"][:, :-1], atol=0.02)
    with pytest.raises(ValueError, match="feat_num >= 2"):
        BandCodeEncoder(3, g.num_codes, g.layer_groups, g.size_multiple, feat_num=1)


def test_hierarchical_encoder_heads_read_their_levels():
    g = ModulatedGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1)
    enc = HierarchicalEncoder(3, g.num_codes, g.layer_groups, width=4)
    seg, image = _segments(), torch.randn(2, 3, 16, 16)
    vectors = enc.instance_vectors(image, seg)
    pooled = [pool_instances(level, index_segments(seg)) for level in enc.pyramid(image)]
    assert torch.allclose(vectors[0], pooled[0] + pooled[2]) and torch.allclose(vectors[1], pooled[1] + pooled[2])
    assert torch.equal(vectors[2], pooled[2])
    codes = enc(image, seg)
    fine = enc.heads["fine"](vectors[0])
    assert torch.equal(torch.cat([codes[i] for i in g.group_layers["fine"]], 1), fine)
    colour = enc.mean_colour(pool_instances(image, index_segments(seg)))  # the DC band, for the coarse head only
    coarse = enc.heads["coarse"](vectors[2] + colour)
    assert torch.allclose(torch.cat([codes[i] for i in g.group_layers["coarse"]], 1), coarse, atol=1e-6)
    assert not torch.allclose(enc.heads["coarse"](vectors[2]), coarse, atol=1e-3)


def test_zero_codes_equal_no_modulation():
    g = ModulatedGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1).eval()
    x, seg = torch.randn(2, 6, 16, 16), _segments()
    zeros = [torch.zeros(5, n) for n in g.num_codes]
    assert torch.allclose(g(x, seg, zeros), g(x), atol=1e-6)


def test_mix_codes_swaps_exactly_the_groups_codes():
    g = ModulatedGenerator(6, 3, ngf=4, n_downsampling=3, n_blocks=1)
    rec = [torch.randn(4, n) for n in g.num_codes]
    don = [torch.randn(3, n) for n in g.num_codes]
    for group, layers in g.group_layers.items():
        mixed = gf.mix_codes(rec, don, layers, [(1, 2)])
        for layer, (m, r, d) in enumerate(zip(mixed, rec, don, strict=True)):
            expected = r.clone()
            if layer in layers:
                expected[1] = d[2]
            assert torch.equal(m, expected), (group, layer)


def test_retrieval_and_probe_helpers():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    labels = np.repeat(np.arange(3), 20)
    x = centres[labels] + 0.05 * rng.normal(size=(60, 8))
    found = gf.retrieve(x, x, k=5, exclude=np.arange(60))
    assert not (found == np.arange(60)[:, None]).any()
    assert gf.precision_at_k(found, labels, labels) == 1.0
    assert gf.linear_probe(x[::2], labels[::2], x[1::2], labels[1::2]) == 1.0


@pytest.fixture(scope="module")
def tiny_runs(demo_root, tmp_path_factory):
    """A modulated run and a GH-Feat run on top of it, 2 iterations each."""
    ck = tmp_path_factory.mktemp("ghfeat")
    Trainer(parse_train_options(tiny_flags(demo_root, ck, "mod") + ["--model", "modulated", "--max_iters", "2"])
            ).train()
    return demo_root, ck


def test_modulated_terms_l1_and_band_control(tiny_runs):
    """G_L1 is the weighted pixel L1 of the reconstruction; the coarse band-control term asks every instance for
    its donor's mean colour (a swapped coarse vector) and its own fine band, the fine one for its own colour."""
    import torch.nn.functional as F

    from synth.models.networks.segments import frequency_bands

    root, ck = tiny_runs
    trainer = Trainer(parse_train_options(tiny_flags(root, ck, "terms") + ["--model", "modulated",
                                                                            "--lambda_l1", "3"]))
    model, batch = trainer.model, next(iter(trainer.loader))
    torch.manual_seed(0)
    out, calls = unique_calls(lambda: model.compute_losses(batch))  # instances numbered once per step
    assert calls == 1 and "G_band" in out.g_losses
    semantics, real = model.encode_input(batch)
    assert torch.allclose(out.g_losses["G_L1"], 3 * F.l1_loss(out.fake, real), atol=1e-5)
    segments = model.segment_ids(batch)
    vectors = model.netE.group_vectors(real, segments)
    bands = frequency_bands(real, segments, model.netE.cell)

    def expected(mixed: dict, targets: dict) -> torch.Tensor:
        fake = frequency_bands(model.synthesize(semantics, segments, model.netE.codes_of(mixed)), segments,
                               model.netE.cell)
        return sum(F.l1_loss(fake[band], target) for band, target in targets.items())

    torch.manual_seed(1)
    coarse = model.band_control_loss(semantics, segments, bands, vectors, "coarse")
    torch.manual_seed(1)
    donors = torch.randperm(vectors["coarse"].shape[0])
    assert not torch.equal(donors, torch.arange(len(donors)))
    swapped = {**vectors, "coarse": vectors["coarse"][donors]}
    assert torch.allclose(coarse, expected(swapped, {"coarse": bands["coarse"][donors], "fine": bands["fine"]}))
    assert not torch.allclose(coarse, expected(swapped, {"coarse": bands["coarse"], "fine": bands["fine"]}))
    torch.manual_seed(2)
    fine = model.band_control_loss(semantics, segments, bands, vectors, "fine")
    torch.manual_seed(2)
    noise = {**vectors, "fine": torch.rand_like(vectors["fine"]) * 2 - 1}
    assert torch.allclose(fine, expected(noise, {"coarse": bands["coarse"]}))


def test_generator_is_frozen_and_bit_identical_after_encoder_training(tiny_runs):
    root, ck = tiny_runs
    trainer = Trainer(parse_train_options(tiny_flags(root, ck, "gh") + [
        "--model", "ghfeat", "--ghfeat_generator", str(ck / "mod"), "--max_iters", "3",
        "--ghfeat_code_space", "generator",
        "--step_in_backward", "off"]))  # D's gradients stay after the step, to be inspected below
    model = trainer.model
    source = torch.load(ck / "mod" / "latest.pt", weights_only=True)["nets"]
    for key, value in model.netG.state_dict().items():
        assert torch.equal(value, source["G"][key])
    for key, value in model.netD.state_dict().items():  # D starts from the pretrained one
        assert torch.equal(value, source["D"][key])
    affines = {k: v.clone() for k, v in model.netE.affines.state_dict().items()}  # G's code space, frozen
    assert all(torch.equal(v, source["E"][f"affines.{k}"]) for k, v in affines.items())
    e_before = [p.detach().clone() for p in model.netE.parameters()]
    batch = next(iter(trainer.loader))
    encoded = []
    model.encode_input = lambda b: encoded.append(1) or type(model).encode_input(model, b)
    out = trainer.train_step(batch)
    del model.encode_input
    assert len(encoded) == 1  # the step builds G's input once
    assert set(out.d_losses) == {"D_fake", "D_real", "D_R1"} and torch.isfinite(out.d_losses["D_R1"])
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.netD.parameters())
    assert all(not p.requires_grad and p.grad is None for p in model.netG.parameters())
    assert not model.netG.training
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(e_before, model.netE.parameters(), strict=True))
    for key, value in model.netG.state_dict().items():
        assert torch.equal(value, source["G"][key])
    assert all(torch.equal(v, model.netE.affines.state_dict()[k]) for k, v in affines.items())
    model.train()
    assert not model.netG.training and model.netE.training


def _trained(root, ck, name: str, model: str) -> None:
    """Train ``name`` (GH-Feat or its baseline on the tiny modulated run) for one iteration unless it exists."""
    if not (ck / name / "latest.pt").exists():
        Trainer(parse_train_options(tiny_flags(root, ck, name) + [
            "--model", model, "--ghfeat_generator", str(ck / "mod"), "--max_iters", "1"])).train()


@pytest.mark.parametrize("model_name", ["ghfeat", "ghfeat_baseline"])
def test_eval_mode_is_deterministic(tiny_runs, model_name):
    from synth.data import create_dataset
    from synth.models.pix2pixhd_model import generator_size_multiple

    root, ck = tiny_runs
    _trained(root, ck, model_name, model_name)
    opt = parse_test_options(["--name", model_name, "--checkpoints_dir", str(ck), "--device", "cpu"])
    model = load_generator(opt)
    assert isinstance(model, GHFeatModel) and not model.training
    opt.size_multiple = generator_size_multiple(opt)
    dataset = create_dataset(opt)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    first, second = gf.reconstruct(model, batch), gf.reconstruct(model, batch)
    assert torch.equal(first, second)
    mixed = gf.style_mix(model, {k: v[:1] for k, v in batch.items()}, {k: v[1:2] for k, v in batch.items()},
                         "coarse")
    assert mixed.shape == first[:1].shape


@pytest.mark.slow
def test_command_line(tiny_runs, tmp_path):
    root, ck = tiny_runs
    _trained(root, ck, "cli", "ghfeat")
    flags = ["--name", "cli", "--checkpoints_dir", str(ck), "--device", "cpu", "--nThreads", "0", "--no_progress",
             "--results_dir", str(tmp_path)]
    assert ghfeat_main(["reconstruct", *flags]) == 0
    assert list((tmp_path / "cli" / "ghfeat").glob("*_reconstruction.png"))
    assert ghfeat_main(["cluster", *flags, "--n_clusters", "2"]) == 0
    assert (ck / "cli" / "ghfeat_clusters_002.npz").is_file()
    assert ghfeat_main(["probe", *flags]) == 0
    assert ghfeat_main(["retrieve", *flags, "--query", "demo_00000:1", "--k", "3"]) == 0
    strip = cv2.imread(str(tmp_path / "cli" / "ghfeat" / "demo_00000_1_retrieval.png"))
    query = cv2.imread(str(root / "test_img" / "demo_00000.png"))
    assert strip.shape == (query.shape[0], 4 * query.shape[1], 3)  # query | 3 neighbours
    inside = cv2.imread(str(root / "test_inst" / "demo_00000.png"), cv2.IMREAD_UNCHANGED) == 1
    tile = strip[:, :query.shape[1]].astype(int)
    assert np.abs(tile[inside] - query[inside]).max() <= 1  # the query instance as it is, the rest dimmed
    assert np.abs(tile[~inside] - np.round(query[~inside] * 0.3)).max() <= 1
    assert ghfeat_main(["mix", *flags, "--recipient", "demo_00000", "--donor", "demo_00001", "--group", "fine"]) == 0
    assert ghfeat_main(["harmonise", *flags, "--recipient", "demo_00000", "--donor", "demo_00001",
                    "--donor_instance", "1"]) == 0
    assert ghfeat_main(["mix", *flags, "--recipient", "demo_00000", "--donor", "demo_00001",
                    "--recipient_instance", "99999", "--donor_instance", "0"]) == 2


def test_ghfeat_needs_a_modulated_generator_checkpoint(demo_root, tmp_path):
    with pytest.raises(OptionError, match="--ghfeat_generator"):
        Trainer(parse_train_options(tiny_flags(demo_root, tmp_path, "x") + ["--model", "ghfeat"]))
