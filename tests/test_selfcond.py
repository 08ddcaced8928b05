"""Self-conditioning pieces at tiny size: label encoding, zero-initialised offsets, the attribute head and its
attribute <-> row mapping, directions, pseudo-labels, instance rebalancing, the model and the sweep command."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from synth.core.errors import DataError, OptionError
from synth.models import attributes as at
from synth.models.networks.attribute import AttributeHead, AttributeOffsets, attribute_kl, soft_labels
from synth.models.networks.segments import index_segments
from tests.conftest import unique_calls


def test_label_encoding_ends_middle_and_between():
    labels = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, float("nan")])
    expected = torch.tensor([[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1], [0, 0, 0]])
    assert torch.allclose(soft_labels(labels), expected)
    assert torch.allclose(soft_labels(torch.tensor([-3.0, 7.0])), expected[[0, 4]])  # clamped to [0, 1]


def test_offsets_start_at_zero_and_follow_the_soft_label():
    offsets = AttributeOffsets([4, 6], num_attributes=2)
    codes = [torch.randn(3, 4), torch.randn(3, 6)]
    labels = torch.tensor([[0.0, float("nan")], [0.5, 1.0], [float("nan"), 0.25]])
    assert all(torch.equal(a, b) for a, b in zip(offsets(codes, labels), codes, strict=True))
    with torch.no_grad():
        offsets.low.copy_(torch.arange(20.0).view(2, 10))
        offsets.high.copy_(-torch.arange(20.0).view(2, 10))
    out = torch.cat(offsets(codes, labels), 1) - torch.cat(codes, 1)
    assert torch.allclose(out[0], offsets.low[0])  # attribute 0 at its low end; attribute 1 unlabelled
    assert torch.allclose(out[1], offsets.high[1])  # attribute 0 in the middle adds nothing; 1 at its high end
    assert torch.allclose(out[2], 0.5 * offsets.low[1])  # attribute 1 half-way down: half its low vector
    with pytest.raises(ValueError, match="labels of shape"):
        offsets(codes, labels[:, :1])


def _segments() -> torch.Tensor:
    seg = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    seg[0, 0, :4, :4] = 1000
    seg[1, 0, 4:, 4:] = 2001
    return seg


def test_head_pools_inside_each_instance_and_maps_attribute_rows():
    torch.manual_seed(0)
    head = AttributeHead(5, num_attributes=2)
    index = index_segments(_segments())
    features = torch.randn(2, 5, 4, 4)
    logits = head(features, index)
    assert logits.shape == (index.count, 2, 3)
    changed = features.clone()
    changed[0, :, 2:, 2:] += 5  # outside instance 1000 of image 0 (its cells are [:2, :2] at this scale)
    row = int((index.keys == 1000).nonzero())
    assert torch.allclose(head(changed, index)[row], logits[row])
    # a label of attribute 1 only trains the head's rows 3..5 (attribute a <-> logits row a)
    labels = torch.full((index.count, 2), float("nan"))
    labels[row, 1] = 0.9
    attribute_kl(head(features, index), labels).backward()
    assert head.linear.weight.grad[:3].abs().sum() == 0 and head.linear.weight.grad[3:].abs().sum() > 0


def test_attribute_kl_is_zero_at_the_target_and_ignores_missing_labels():
    labels = torch.tensor([[0.25], [float("nan")]])
    logits = torch.tensor([[[0.0, 0.0, -40.0]], [[9.0, -9.0, 0.0]]])
    assert attribute_kl(logits, labels) < 1e-6
    assert attribute_kl(logits, torch.tensor([[1.0], [float("nan")]])) > 1.0
    assert attribute_kl(logits, torch.full((2, 1), float("nan"))) == 0


def _factor_codes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes whose hidden direction carries a long-tailed factor, plus unrelated variation and noise."""
    rng = np.random.default_rng(seed)
    factor = 1 + 5 * rng.random(n) ** 7.4
    basis = np.linalg.qr(np.random.default_rng(99).standard_normal((12, 12)))[0]
    codes = np.column_stack([factor, rng.standard_normal((n, 11)) * 2]) @ basis.T
    return codes + 0.002 * rng.standard_normal(codes.shape), factor


@pytest.mark.parametrize("method", ["svm", "logreg"])
def test_direction_from_labelled_instances_orders_held_out_ones(method):
    train, train_factor = _factor_codes(100, 0)
    test, test_factor = _factor_codes(300, 1)
    direction = at.fit_direction(train, train_factor, method)
    assert np.isclose(np.linalg.norm(direction.normal), 1.0)
    assert spearmanr(direction.distance(test), test_factor)[0] >= 0.8


def test_centroid_direction_separates_two_clusters_and_flips():
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(-3, 0.3, (50, 4)), rng.normal(3, 0.3, (50, 4))])
    direction = at.centroid_direction(codes)
    sides = np.sign(direction.distance(codes))
    assert abs(sides[:50].sum()) == 50 and abs(sides[50:].sum()) == 50 and sides[0] != sides[-1]
    assert np.allclose(at.flip_direction(direction).distance(codes), -direction.distance(codes))


def test_direction_needs_both_sides():
    with pytest.raises(OptionError, match="both sides"):
        at.fit_direction(np.zeros((4, 3)), np.ones(4))


def test_pseudo_labels_clip_to_percentiles_and_round_trip(tmp_path):
    codes, _ = _factor_codes(400, 2)
    direction = at.Direction(np.eye(12)[0], 0.5)
    labels = at.pseudo_labels(["a"], [direction], codes, [f"k{i // 4}" for i in range(400)], np.arange(400))
    d = labels.distances[:, 0]
    assert np.isclose(labels.lows[0], np.percentile(d, 0.5)) and np.isclose(labels.highs[0], np.percentile(d, 99.5))
    assert labels.labels.min() == 0 and labels.labels.max() == 1
    inside = (d > labels.lows[0]) & (d < labels.highs[0])
    assert np.allclose(labels.distance_of_label(labels.labels)[inside, 0], d[inside])
    loaded = at.PseudoLabels.load(labels.save(tmp_path / "labels.npz"))
    assert loaded.keys == labels.keys and np.array_equal(loaded.labels, labels.labels)
    assert loaded.attribute_index("a") == 0
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        at.PseudoLabels.load(tmp_path / "bad.npz")


def test_rebalancing_makes_interior_bins_about_uniform():
    """A long-tailed attribute (85 % of instances in the bottom 30 %) over images of 2-5 instances: the interior
    bins end up within 3x of each other and the two sparse thirds (middle and top) gain at least 1.3x."""
    rng = np.random.default_rng(0)
    per_image = rng.integers(2, 6, 400)
    labels = rng.random(per_image.sum()) ** 7.4
    image_of = np.repeat(np.arange(400), per_image)
    weights = at.instance_weights(labels, 10)
    drawn = rng.choice(len(labels), 20_000, p=weights)
    figures = at.rebalance_figures(labels, drawn)
    assert figures["interior_ratio_after"] <= 3 < figures["interior_ratio_before"], figures
    assert figures["sparse_share_after"] >= 1.3 * figures["sparse_share_before"], figures
    values = labels ** 0.5  # the attribute itself: same order as the labels, less piled up
    by_value = at.rebalance_figures(labels, drawn, values=values)
    thirds = np.bincount(np.minimum((values * 3).astype(int), 2), minlength=3) / len(values)
    assert by_value["interior_ratio_after"] == figures["interior_ratio_after"]
    assert np.isclose(by_value["sparse_share_before"], np.sort(thirds)[:2].sum())
    assert by_value["sparse_share_before"] > figures["sparse_share_before"]
    assert by_value["sparse_share_after"] > by_value["sparse_share_before"]
    images = at.image_weights(weights, image_of, 400)
    assert np.isclose(images.sum(), 1) and np.allclose(images, np.bincount(image_of, weights))
    report = at.resample_report(image_of[drawn[:400]])
    assert 0 < report.unique <= 400 and report.max_repeats >= 1 and "unique" in str(report)


# ----- the model and the commands on a tiny pretrained modulated run ----------------------------------------

@pytest.fixture(scope="module")
def pretrained(demo_root, tmp_path_factory):
    """(flags, checkpoints dir, pseudo-label file) after one epoch of a tiny --model modulated run."""
    from synth.commands.selfcond import main as selfcond_main
    from synth.options import parse_train_options
    from synth.trainer import Trainer
    from tests.conftest import tiny_flags

    ck = tmp_path_factory.mktemp("selfcond")
    flags = tiny_flags(demo_root, ck) + ["--niter_decay", "0"]
    Trainer(parse_train_options(flags + ["--name", "mod", "--model", "modulated", "--nef", "4"])).train()
    test_flags = ["--name", "mod", "--checkpoints_dir", str(ck), "--device", "cpu", "--no_progress"]
    assert selfcond_main(["direction", "--method", "kmeans", "--out", str(ck / "dir.npz"), *test_flags]) == 0
    assert selfcond_main(["label", "--direction", f"stripes={ck / 'dir.npz'}", "--out", str(ck / "labels.npz"),
                          *test_flags]) == 0
    return flags, ck, ck / "labels.npz"


def _selfcond_flags(pretrained, name="sc"):
    flags, ck, labels = pretrained
    return flags + ["--name", name, "--model", "selfcond", "--sc_pretrained", str(ck / "mod"), "--sc_labels",
                    str(labels), "--sc_bins", "4"]


@pytest.mark.slow
def test_zero_initialised_model_equals_the_pretrained_one(pretrained, demo_root):
    from torch.utils.data import default_collate

    from synth import ghfeat as gf
    from synth.data import create_dataset
    from synth.inference import load_generator
    from synth.options import parse_test_options, parse_train_options

    _, ck, _ = pretrained
    opt = parse_train_options(_selfcond_flags(pretrained))
    from synth.assembly import build_model

    model = build_model(opt, for_training=True).eval()
    opt.size_multiple = 8
    base = load_generator(parse_test_options(["--name", "mod", "--checkpoints_dir", str(ck), "--device", "cpu"]))
    batch = default_collate([create_dataset(opt)[i] for i in range(2)])
    enc = gf.encode(base, batch)
    labels = model.instance_labels(batch, enc.index)
    assert (~torch.isnan(labels)).sum() > 0  # the objects of these images are labelled
    with torch.no_grad():
        conditioned = model.synthesize(enc.semantics, enc.segments, model.condition(model.encode_codes(
            enc.real, enc.segments), labels))
    assert (conditioned - gf.decode(base, enc)).abs().max() < 1e-6
    out, calls = unique_calls(lambda: model.compute_losses(batch))  # instances numbered once per step
    assert calls == 1 and {"G_attr", "G_L1", "G_local"} <= set(out.g_losses) and "D_attr" in out.d_losses
    assert out.g_losses["G_local"] == 0  # zero offsets: a redrawn label changes nothing
    with torch.no_grad():
        model.netC.high.fill_(0.5)
        model.netC.low.fill_(-0.5)
    assert model.compute_losses(batch).g_losses["G_local"] > 0


@pytest.mark.slow
def test_fine_tuning_trains_offsets_and_head_and_resumes_exactly(pretrained):
    from synth.options import parse_train_options
    from synth.trainer import Trainer

    flags = _selfcond_flags(pretrained, "sc_resume")
    trainer = Trainer(parse_train_options(flags + ["--max_iters", "2"]))
    e_before = {k: v.clone() for k, v in trainer.model.netE.state_dict().items()}
    trainer.train()
    assert trainer.sampler.weights is not None  # rebalanced sampling
    assert trainer.model.netC.low.abs().sum() + trainer.model.netC.high.abs().sum() > 0
    assert all(torch.equal(v, trainer.model.netE.state_dict()[k]) for k, v in e_before.items())  # E frozen
    resumed = Trainer(parse_train_options(flags + ["--continue_train", "--max_iters", "4"]))
    resumed.train()
    straight = Trainer(parse_train_options(_selfcond_flags(pretrained, "sc_straight") + ["--max_iters", "4"]))
    straight.train()
    for name in ("G", "C", "H", "D"):
        a, b = resumed.model.networks()[name].state_dict(), straight.model.networks()[name].state_dict()
        assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a), name


@pytest.mark.slow
def test_sweep_command_writes_a_strip(pretrained, demo_root, tmp_path):
    from synth.commands.selfcond import main as selfcond_main
    from synth.models.attributes import PseudoLabels
    from synth.options import parse_train_options
    from synth.trainer import Trainer

    _, ck, labels_path = pretrained
    Trainer(parse_train_options(_selfcond_flags(pretrained, "sc_sweep") + ["--max_iters", "1"])).train()
    labels = PseudoLabels.load(labels_path)
    key, instance = labels.keys[0], int(labels.ids[0])
    common = ["--checkpoints_dir", str(ck), "--device", "cpu", "--phase", "train"]
    out = tmp_path / "strips"
    assert selfcond_main(["sweep", "--name", "sc_sweep", "--image", key, "--instance", str(instance), "--steps", "3",
                          "--out", str(out), *common]) == 0
    from PIL import Image

    strip = np.asarray(Image.open(out / f"{key}_{instance}_sweep.png"))
    assert strip.shape == (32, 32 * 4, 3)
    assert selfcond_main(["sweep", "--name", "mod", "--image", key, "--instance", str(instance), "--out", str(out),
                          "--baseline_labels", str(labels_path), *common]) == 0
    assert selfcond_main(["sweep", "--name", "mod", "--image", key, "--instance", "7", *common]) == 2

    # The edit is the condition alone: with zero offsets nothing changes, unless the code is moved too.
    from torch.utils.data import default_collate

    from synth.data import create_dataset
    from synth.inference import load_generator
    from synth.models.pix2pixhd_model import generator_size_multiple
    from synth.options import parse_test_options
    from synth.selfcond import sweep

    opt = parse_test_options(["--name", "sc_sweep", *common])
    model = load_generator(opt)
    opt.size_multiple = generator_size_multiple(opt)
    dataset = create_dataset(opt)
    batch = default_collate([dataset[[s.key for s in dataset.samples].index(key)]])
    with torch.no_grad():
        model.netC.low.zero_()
        model.netC.high.zero_()
    kept = sweep(model, batch, instance, 3)
    assert all(torch.equal(image, kept.unedited) for image in kept.images)
    moved = sweep(model, batch, instance, 3, move_code=True)
    assert not torch.equal(moved.images[0], moved.images[-1])


def test_selfcond_needs_its_inputs(demo_root, tmp_path):
    from synth.assembly import build_model
    from synth.options import parse_train_options
    from tests.conftest import tiny_flags

    opt = parse_train_options(tiny_flags(demo_root, tmp_path) + ["--model", "selfcond"])
    with pytest.raises(OptionError, match="--sc_labels"):
        build_model(opt, for_training=True)


@pytest.mark.slow
def test_fine_tuning_under_torchrun_leaves_the_frozen_encoder_out_of_ddp(pretrained, tmp_path):
    """2 CPU processes (gloo): E has no trainable parameter, so it is not wrapped in DDP (which would refuse it)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from synth.checkpoint import load_checkpoint

    repo = Path(__file__).resolve().parents[1]
    _, ck, _ = pretrained
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(repo / "train.py"), *_selfcond_flags(pretrained, "sc_ddp"), "--max_iters", "2", "--batchSize", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tuned, base = load_checkpoint(ck / "sc_ddp" / "latest.pt"), load_checkpoint(ck / "mod" / "latest.pt")
    assert all(torch.equal(v, base["nets"]["E"][k]) for k, v in tuned["nets"]["E"].items())
    assert tuned["progress"]["total_iters"] == 2


@pytest.mark.slow
def test_selfcond_names_a_wrong_pretrained_run_or_label_file(pretrained, demo_root, tmp_path):
    from synth.assembly import build_model
    from synth.core.errors import CheckpointError
    from synth.options import parse_train_options
    from synth.trainer import Trainer
    from tests.conftest import tiny_flags

    Trainer(parse_train_options(tiny_flags(demo_root, tmp_path, "plain") + ["--max_iters", "1"])).train()
    flags = _selfcond_flags(pretrained, "sc_bad")
    opt = parse_train_options([*flags, "--sc_pretrained", str(tmp_path / "plain")])
    with pytest.raises(CheckpointError, match="--sc_pretrained needs a --model modulated checkpoint"):
        build_model(opt, for_training=True)
    (tmp_path / "labels.npz").write_text("not a zip")
    opt = parse_train_options([*flags, "--sc_labels", str(tmp_path / "labels.npz")])
    with pytest.raises(DataError, match="labels.npz: not a pseudo-label file"):
        build_model(opt, for_training=True)


def test_the_svms_c_is_chosen_by_cross_validation_where_each_side_has_enough_labels_for_the_folds():
    rng = np.random.default_rng(3)
    codes = rng.normal(size=(60, 40))
    values = codes[:, 0] + 0.1 * rng.normal(size=60)
    binary = values > np.median(values)
    assert at._cross_validated_c(codes, values, binary, seed=0) in at.SVM_C_GRID
    few = np.zeros(60, bool)
    few[:at.CV_FOLDS - 1] = True  # too few positives for stratified folds
    assert at._cross_validated_c(codes, few.astype(float), few, seed=0) == 1.0
    direction = at.fit_direction(codes, values)
    assert spearmanr(direction.distance(codes), values)[0] > 0.9  # the numeric attribute's axis is found
