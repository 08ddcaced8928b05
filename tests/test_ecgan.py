"""ECGAN: the contrastive and similarity losses on hand-made tensors, gradients, ablations, shapes and configs."""

import math

import pytest
import torch

from synth.models.ecgan_model import ECGANModel
from synth.models.losses.contrastive import PixelContrastLoss, pixel_contrast_loss, sample_pixels
from synth.models.losses.similarity import similarity_loss
from synth.options import parse_test_options, parse_train_options
from synth.trainer import Trainer
from tests.conftest import tiny_flags


def ecgan_flags(root, run_dir, *extra: str) -> list[str]:
    return tiny_flags(root, run_dir) + ["--model", "ecgan", "--ngf_label", "4", "--n_blocks_label", "1",
                                        "--contrast_dim", "8", "--contrast_anchors", "64", *extra]


def direct_contrast(emb: torch.Tensor, labels: torch.Tensor, keys: torch.Tensor, key_labels: torch.Tensor,
                    tau: float) -> float:
    """The formula written out with loops; anchor a is key a (never its own positive)."""
    losses = []
    for a in range(emb.shape[0]):
        pos = [k for k in range(keys.shape[0]) if key_labels[k] == labels[a] and k != a]
        neg = [k for k in range(keys.shape[0]) if key_labels[k] != labels[a]]
        if not pos:
            continue
        sim = [math.exp(float(emb[a] @ keys[k]) / tau) for k in range(keys.shape[0])]
        terms = [-math.log(sim[p] / (sim[p] + sum(sim[n] for n in neg))) for p in pos]
        losses.append(sum(terms) / len(terms))
    return sum(losses) / len(losses)


def test_contrastive_loss_equals_the_formula_with_and_without_a_bank():
    gen = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(6, 4, generator=gen), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 0])
    expected = direct_contrast(emb, labels, emb, labels, 0.5)
    assert pixel_contrast_loss(emb, labels, 0.5).item() == pytest.approx(expected, rel=1e-5)
    bank = torch.nn.functional.normalize(torch.randn(3, 4, generator=gen), dim=1)
    bank_labels = torch.tensor([2, 1, 3])
    keys, key_labels = torch.cat([emb, bank]), torch.cat([labels, bank_labels])
    expected = direct_contrast(emb, labels, keys, key_labels, 0.5)
    assert pixel_contrast_loss(emb, labels, 0.5, bank, bank_labels).item() == pytest.approx(expected, rel=1e-5)


def test_contrastive_loss_is_lower_for_embeddings_clustered_by_class():
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(4).repeat_interleave(16)
    centres = torch.nn.functional.normalize(torch.randn(4, 16, generator=gen), dim=1)
    clustered = torch.nn.functional.normalize(centres[labels] + 0.1 * torch.randn(64, 16, generator=gen), dim=1)
    shuffled = clustered[torch.randperm(64, generator=gen)]
    assert pixel_contrast_loss(clustered, labels).item() < 0.5 * pixel_contrast_loss(shuffled, labels).item()


def test_memory_bank_fills_as_a_ring_and_sampling_ignores_dontcare():
    loss = PixelContrastLoss(dim=4, memory_size=5)
    emb = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    loss(emb, torch.tensor([0, 1, 1]))
    loss(emb, torch.tensor([2, 2, 2]))
    assert loss.bank_filled == 5 and loss.bank_labels.tolist() == [2, 1, 1, 2, 2]
    labels = torch.tensor([[[[0, 0, 5, 5], [1, 5, 5, 5]]]])
    index, filled = sample_pixels(labels, ignore_index=5, max_samples=10)
    assert len(index) == 8 and sorted(index[filled].tolist()) == [0, 1, 4] and int(filled.sum()) == 3
    index, filled = sample_pixels(labels, ignore_index=5, max_samples=2)
    assert filled.all() and set(index.tolist()) <= {0, 1, 4}


def test_sampling_is_class_balanced_and_empty_slots_take_no_part():
    labels = torch.zeros(1, 1, 40, 40, dtype=torch.long)
    labels[0, 0, :2, :2] = 1  # 4 pixels of class 1 among 1596 of class 0
    generator = torch.Generator().manual_seed(0)
    drawn = torch.cat([labels.reshape(-1)[sample_pixels(labels, -1, 2, generator)[0]] for _ in range(400)])
    assert 0.4 < drawn.float().mean().item() < 0.6  # each class equally likely, whatever its area
    emb = torch.nn.functional.normalize(torch.randn(4, 3), dim=1)
    full = pixel_contrast_loss(emb[:3], torch.tensor([0, 0, 1]))
    assert torch.allclose(pixel_contrast_loss(emb, torch.tensor([0, 0, 1, -1])), full)  # -1: not a key either
    lone = pixel_contrast_loss(emb, torch.tensor([-1, -1, -1, 2]))
    assert lone.item() == 0.0  # no anchor with a positive: zero, not NaN
    index, filled = sample_pixels(labels, -1, 3, torch.Generator().manual_seed(1), num_classes=2)
    assert torch.equal(index, sample_pixels(labels, -1, 3, torch.Generator().manual_seed(1))[0]) and filled.all()


def test_similarity_loss_is_zero_exactly_for_the_true_layout():
    labels = torch.randint(0, 4, (2, 6, 5))
    target = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    assert similarity_loss(target, target, n_pixels=16).item() == pytest.approx(0.0, abs=1e-6)
    soft = torch.softmax(3 * target + torch.randn_like(target), dim=1)
    assert similarity_loss(soft, target, n_pixels=16).item() > 0.01
    shuffled = target[:, torch.tensor([1, 2, 3, 0])]  # the same partition with other class ids: also perfect
    assert similarity_loss(shuffled, target).item() == pytest.approx(0.0, abs=1e-6)


@pytest.fixture
def trainer(demo_root, tmp_path) -> Trainer:
    return Trainer(parse_train_options(ecgan_flags(demo_root, tmp_path)))


def test_recipe_defaults_and_every_loss_term(trainer):
    opt = trainer.opt
    assert (opt.gan_mode, opt.lr, opt.lr_D, opt.beta1, opt.beta2, opt.need_edges) == ("hinge", 1e-4, 4e-4, 0, 0.9, 1)
    out = trainer.model.compute_losses(next(iter(trainer.loader)))
    assert set(out.g_losses) == {"G_GAN", "G_GAN_Feat", "G_GAN_inter", "G_GAN_Feat_inter", "G_GAN_edge",
                                 "G_GAN_Feat_edge", "G_sim", "G_contrast"}
    assert set(out.d_losses) == {"D_fake", "D_fake_inter", "D_fake_edge", "D_real", "D_real_edge"}
    assert set(trainer.model.networks()) == {"G", "D", "L", "P"}


def test_gradients_reach_the_edge_generator_through_the_image_losses(trainer):
    model = trainer.model
    out = model.compute_losses(next(iter(trainer.loader)))
    image_terms = sum(v for k, v in out.g_losses.items() if not k.endswith("_edge"))
    edge_params = list(model.netG.edge_stages.parameters()) + list(model.netG.edge_head.parameters())
    grads = torch.autograd.grad(image_terms, edge_params, allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(
    ("flag", "removed"),
    [("--no_edge", "G.edge_"), ("--no_semantic_preserving", "G.semantic."), ("--no_similarity_loss", "L."),
     ("--no_contrastive_loss", "P.")],
)
def test_each_ablation_flag_removes_its_parameters(demo_root, tmp_path, flag, removed):
    def names(*extra: str) -> set[str]:
        model = ECGANModel(parse_train_options(ecgan_flags(demo_root, tmp_path, *extra)), for_training=True)
        return {f"{net}.{name}" for net, module in model.networks().items() for name, _ in module.named_parameters()}

    full, ablated = names(), names(flag)
    assert ablated < full and all(name.startswith(removed) for name in full - ablated)


def test_no_edge_attention_keeps_parameters_but_drops_the_gating(demo_root, tmp_path):
    torch.manual_seed(0)
    gated = ECGANModel(parse_train_options(ecgan_flags(demo_root, tmp_path)), for_training=False)
    plain = ECGANModel(parse_train_options(ecgan_flags(demo_root, tmp_path, "--no_edge_attention")), False)
    plain.load_state_dict(gated.state_dict())
    x = torch.rand(1, 6, 8, 8)
    assert not torch.allclose(gated(x), plain(x))


@pytest.mark.parametrize("extra", [[], ["--no_edge", "--sp_class_presence"], ["--no_semantic_preserving"]])
def test_shapes_hold_for_odd_sizes(demo_root, tmp_path, extra):
    flags = ecgan_flags(demo_root, tmp_path, "--n_downsample_global", "0", *extra)
    model = ECGANModel(parse_train_options(flags), for_training=False)
    x = torch.zeros(2, 6, 17, 23)
    x[:, 1] = 1.0
    visuals = model.inference_visuals(x)
    assert visuals["synthesized_image"].shape == (2, 3, 17, 23)
    assert ("edge_map" in visuals) == ("--no_edge" not in extra)
    assert all(v.shape[-2:] == (17, 23) and v.abs().max() <= 1 for v in visuals.values())


def test_local_enhancer_trunk(demo_root, tmp_path):
    flags = ecgan_flags(demo_root, tmp_path, "--netG", "local", "--n_local_enhancers", "1", "--n_blocks_local", "1")
    model = ECGANModel(parse_train_options(flags), for_training=False)
    assert model.netG.size_multiple == 8
    assert model(torch.rand(1, 6, 16, 24)).shape == (1, 3, 16, 24)
    staged = {id(p) for p in model.netG.outermost_parameters()}
    assert not any(id(p) in staged for p in model.netG.trunk.global_parameters())
    assert {id(p) for p in model.netG.head_parameters()} <= staged


def test_configs_parse_with_the_recipe():
    for name in ("cityscapes", "ade20k", "demo"):
        opt = parse_train_options(["--config", f"configs/ecgan_{name}.yaml", "--device", "cpu"])
        assert opt.model == "ecgan" and opt.gan_mode == "hinge" and (opt.beta1, opt.beta2) == (0.0, 0.9)
        assert (opt.lr, opt.lr_D, opt.num_D) == (1e-4, 4e-4, 2) and opt.need_edges
    assert parse_test_options(["--model", "ecgan", "--device", "cpu"]).n_layers_D == 4


@pytest.mark.slow
def test_tiny_ecgan_learns_edges_and_images_then_test_saves_the_edge_map(demo_root, tmp_path):
    from synth.inference import run_inference

    trainer = Trainer(parse_train_options(ecgan_flags(demo_root, tmp_path, "--lr", "0.002", "--lr_D", "0.002")))
    batch = next(iter(trainer.loader))

    def errors() -> tuple[float, float]:
        with torch.no_grad():
            out = trainer.model.inference_visuals(trainer.model.encode_input(batch)[0])
        image = (out["synthesized_image"] - batch["image"]).abs().mean().item()
        return image, (out["edge_map"] - batch["edge"]).abs().mean().item()

    image_before, edge_before = errors()
    for _ in range(20):
        trainer.train_step(batch)
    image_after, edge_after = errors()
    assert image_after < 0.9 * image_before and edge_after < 0.85 * edge_before
    step = trainer.train_step(batch)
    trainer.logger.log_visuals(batch, step.fake, 1, 21, step.visuals)
    web = sorted(p.name.split("_", 2)[2] for p in (tmp_path / "tiny" / "web" / "images").glob("*.png"))
    assert web == ["edge_map.png", "input_label.png", "intermediate_image.png", "real_image.png",
                   "synthesized_image.png"]  # the training page shows the edge map and I' too
    trainer.save("latest")
    page = run_inference(parse_test_options(["--name", "tiny", "--checkpoints_dir", str(tmp_path), "--dataroot",
                                             str(demo_root), "--results_dir", str(tmp_path / "res"), "--how_many",
                                             "2", "--device", "cpu", "--nThreads", "0", "--no_progress"]))
    images = page.parent / "images"
    for kind in ("synthesized_image", "edge_map", "intermediate_image", "input_label", "real_image"):
        assert (images / f"demo_00000_{kind}.png").is_file()
    assert page.read_text().count("<img") == 10
