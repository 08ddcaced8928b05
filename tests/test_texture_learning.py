"""A feature-conditioned pix2pixHD trained for about a minute on the demo data: encoded instance features
reproduce held-out images better than zero features, and editing one instance's features changes that
instance more than any other segment of the image."""

import pytest
import torch

from synth.commands.encode_features import main as encode_features_main
from synth.data import create_dataset
from synth.data.demo import DemoConfig, generate_demo_dataset
from synth.features import FeatureClusters
from synth.inference import load_generator
from synth.models.pix2pixhd_model import generator_size_multiple
from synth.options import parse_test_options, parse_train_options
from synth.trainer import Trainer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, held-out batch, clusters) after 4 epochs over 64 scenes of 64x64."""
    tmp = tmp_path_factory.mktemp("texture")
    root = generate_demo_dataset(tmp / "demo", DemoConfig(width=64, height=64, n_train=64, n_test=8, seed=2))
    run = ["--name", "feat", "--checkpoints_dir", str(tmp / "ck"), "--device", "cpu", "--no_progress"]
    Trainer(parse_train_options(run + [
        "--dataroot", str(root), "--label_nc", "5", "--resize_or_crop", "none", "--ngf", "16",
        "--n_downsample_global", "3", "--n_blocks_global", "2", "--ndf", "16", "--n_layers_D", "2",
        "--no_vgg_loss", "--batchSize", "4", "--nThreads", "0", "--no_wandb", "--niter", "4", "--niter_decay", "0",
        "--instance_feat", "--nef", "8", "--n_downsample_E", "3", "--lr", "0.001", "--print_freq", "1000",
        "--display_freq", "100000",
    ])).train()
    assert encode_features_main(run + ["--n_clusters", "5"]) == 0
    opt = parse_test_options(run)
    model = load_generator(opt)
    opt.size_multiple = generator_size_multiple(opt)
    dataset = create_dataset(opt)  # the held-out test split
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    clusters = FeatureClusters.load(tmp / "ck" / "feat" / "features_clustered_005.npz")
    return model, batch, clusters


def test_encoded_features_reproduce_held_out_images_better_than_zero_features(trained):
    model, batch, _ = trained
    with torch.no_grad():
        semantics, real = model.encode_input(batch)
        encoded = model.encode_features(real, model.segment_ids(batch))
        with_codes = model(model.generator_input(semantics, encoded))
        without = model(model.generator_input(semantics, torch.zeros_like(encoded)))
    l1_codes, l1_zero = (with_codes - real).abs().mean().item(), (without - real).abs().mean().item()
    assert l1_codes < l1_zero, (l1_codes, l1_zero)


def _change_per_segment(model, semantics, encoded, before, inst, b, segment, clusters):
    """Mean |after - before| over each segment of image b once `segment` takes its farthest cluster centre."""
    mask = inst[b : b + 1] == segment
    code = encoded[b, :, mask[0, 0]][:, 0]
    centers = torch.from_numpy(clusters.centers[segment // 1000])
    edited = encoded[b : b + 1].clone()
    edited[:, :, mask[0, 0]] = centers[(centers - code).norm(dim=1).argmax()][:, None]
    with torch.no_grad():
        after = model(model.generator_input(semantics[b : b + 1], edited))
    change = (after - before[b : b + 1]).abs().mean(1, keepdim=True)
    return {i: change[inst[b : b + 1] == i].mean().item() for i in inst[b].unique().tolist()}


def test_editing_one_instance_changes_that_instance_most(trained):
    # Instance norm spreads any edit thinly over the whole image, so the claim is a ranking: of every segment of
    # the image (objects and stuff), the edited object changes most, for each of the three largest objects.
    model, batch, clusters = trained
    inst, label = batch["inst"], batch["label"]
    with torch.no_grad():
        semantics, real = model.encode_input(batch)
        encoded = model.encode_features(real, model.segment_ids(batch))
        before = model(model.generator_input(semantics, encoded))
    objects = sorted(((int((inst[b] == i).sum()), b, i) for b in range(len(inst)) for i in inst[b].unique().tolist()
                      if i >= 1000), reverse=True)
    for _, b, segment in objects[:3]:
        assert label[b][inst[b] == segment].unique().tolist() == [segment // 1000]
        change = _change_per_segment(model, semantics, encoded, before, inst, b, segment, clusters)
        assert max(change, key=change.get) == segment, (segment, change)
