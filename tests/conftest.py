"""Shared fixtures: a tiny generated demo dataset and the flags of a tiny model that trains in seconds."""

from pathlib import Path

import pytest

from synth.data.demo import DemoConfig, generate_demo_dataset

SHARED_CITYSCAPES = Path(__file__).resolve().parents[2] / "shared" / "data" / "cityscapes_samples"


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """8 training and 3 test scenes of 32x32 pixels."""
    root = tmp_path_factory.mktemp("demo")
    return generate_demo_dataset(root, DemoConfig(width=32, height=32, n_train=8, n_test=3, seed=1))


def tiny_flags(root: Path, run_dir: Path, name: str = "tiny") -> list[str]:
    """A small pix2pixHD (global G, 2 scales of D, feature matching, no VGG) on the demo data, on the CPU."""
    return [
        "--dataroot", str(root), "--checkpoints_dir", str(run_dir), "--name", name, "--label_nc", "5",
        "--resize_or_crop", "none", "--ngf", "4", "--n_downsample_global", "2", "--n_blocks_global", "1",
        "--ndf", "4", "--n_layers_D", "2", "--num_D", "2", "--no_vgg_loss", "--batchSize", "2",
        "--nThreads", "0", "--device", "cpu", "--no_wandb", "--no_progress", "--niter", "1", "--niter_decay", "1",
        "--print_freq", "4", "--display_freq", "8", "--save_latest_freq", "1000",
    ]


def modulated_flags(root: Path, checkpoints: Path) -> list[str]:
    """A tiny modulated generator (ngf 8, 3 down-samplings, 1 block, one 2-layer D) for the acceptance tests of
    GH-Feat and self-conditioning; add --name, --model and --niter."""
    return [
        "--dataroot", str(root), "--checkpoints_dir", str(checkpoints), "--device", "cpu", "--no_progress",
        "--label_nc", "5", "--resize_or_crop", "none", "--ngf", "8", "--n_downsample_global", "3",
        "--n_blocks_global", "1", "--ndf", "8", "--n_layers_D", "2", "--num_D", "1", "--no_vgg_loss",
        "--batchSize", "4", "--nThreads", "0", "--no_wandb", "--print_freq", "100000",
        "--display_freq", "100000", "--niter_decay", "0", "--nef", "8", "--lr", "0.002",
    ]


def unique_calls(step):
    """(result of ``step()``, how many times it called ``torch.unique``): instance numbering, a host sync on a
    GPU, that a training step should do once."""
    import torch

    calls = []
    unique = torch.unique
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "unique", lambda *a, **k: calls.append(1) or unique(*a, **k))
        return step(), len(calls)


@pytest.fixture(scope="session")
def feature_run(tmp_path_factory) -> dict:
    """A tiny pix2pixHD with instance features and per-class clusters, trained a few steps on 64x64 demo scenes:
    ``{"name", "checkpoints", "dataroot"}`` (for the API, the editor's server and its browser tests)."""
    from synth.features import cluster_training_set, named_cluster_path
    from synth.inference import load_generator
    from synth.options import parse_test_options, parse_train_options
    from synth.trainer import train

    tmp = tmp_path_factory.mktemp("feature_run")
    root = generate_demo_dataset(tmp / "demo", DemoConfig(width=64, height=64, n_train=8, n_test=2, seed=2))
    flags = tiny_flags(root, tmp / "ck", "feat")
    flags += ["--instance_feat", "--feat_num", "3", "--nef", "4", "--n_downsample_E", "2", "--n_clusters", "4",
              "--ngf", "8", "--max_iters", "4"]
    train(parse_train_options(flags))
    opt = parse_test_options(["--name", "feat", "--checkpoints_dir", str(tmp / "ck"), "--device", "cpu",
                              "--phase", "train", "--n_clusters", "4", "--no_progress"])
    cluster_training_set(load_generator(opt), opt, 1 / 256, named_cluster_path(opt))
    return {"name": "feat", "checkpoints": tmp / "ck", "dataroot": root}


@pytest.fixture(scope="module")
def pretrained(demo_root, tmp_path_factory):
    """A tiny --model modulated run (the generator of GH-Feat and self-cond) and its pseudo-label file."""
    from synth.commands.selfcond import main as selfcond_main
    from synth.options import parse_train_options
    from synth.trainer import Trainer

    ck = tmp_path_factory.mktemp("pretrained")
    flags = tiny_flags(demo_root, ck, "mod") + ["--model", "modulated", "--nef", "4", "--max_iters", "2"]
    Trainer(parse_train_options(flags)).train()
    test_flags = ["--name", "mod", "--checkpoints_dir", str(ck), "--device", "cpu", "--no_progress"]
    assert selfcond_main(["direction", "--method", "kmeans", "--out", str(ck / "dir.npz"), *test_flags]) == 0
    assert (
        selfcond_main(
            ["label", "--direction", f"stripes={ck / 'dir.npz'}", "--out", str(ck / "labels.npz"), *test_flags]
        )
        == 0
    )
    return {"mod": str(ck / "mod"), "labels": str(ck / "labels.npz")}
