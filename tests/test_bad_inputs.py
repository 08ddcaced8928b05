"""Bad input of every kind (issue 17): each is one line ``error: ...`` naming the flag or file, exit status 2, and
the files that were there are byte-identical afterwards. Commands run in-process; a few in a subprocess to show
that no traceback reaches the user."""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synth.commands.demo_data import main as demo_data_main
from synth.commands.edit import main as edit_main
from synth.commands.encode_features import main as encode_main
from synth.commands.evaluate import main as eval_main
from synth.commands.export_onnx import main as export_main
from synth.commands.ghfeat import main as ghfeat_main
from synth.commands.import_pix2pixhd import main as import_main
from synth.commands.selfcond import main as selfcond_main
from synth.commands.test import main as synth_test_main
from synth.commands.train import main as train_main
from synth.core.arrays_file import save_arrays
from synth.core.errors import DataError
from synth.features import FeatureClusters
from synth.metrics.fid import load_statistics
from synth.models.attributes import PseudoLabels
from synth.options.parse import add_model_options, build_parser
from synth.options.validate import OPTION_RANGES, Range
from synth.selfcond import load_direction
from tests.conftest import tiny_flags

ROOT = Path(__file__).resolve().parents[1]

#: Flags a model adds: the model that adds them (for --model).
MODEL_OF_FLAG = {
    **dict.fromkeys(
        (
            "edge_steps",
            "ngf_label",
            "n_blocks_label",
            "contrast_dim",
            "lambda_final",
            "lambda_sim",
            "sim_pixels",
            "lambda_contrast",
            "contrast_temperature",
            "contrast_anchors",
            "contrast_memory",
        ),
        "ecgan",
    ),
    **dict.fromkeys(("lambda_l1", "lambda_band"), "modulated"),
    **dict.fromkeys(("ghfeat_width", "lambda_mse", "lambda_perceptual", "lambda_adv", "r1_gamma"), "ghfeat"),
    **dict.fromkeys(("lambda_attr", "lambda_attr_D", "lambda_locality", "sc_bins"), "selfcond"),
}
TEST_ONLY = {"how_many", "ntest", "aspect_ratio"}


def tree_hash(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path (empty when it does not exist)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def fails(main, argv, capsys, *fragments: str, watch: Path | None = None) -> str:
    """``main(argv)`` exits 2 with exactly one stderr line ``error: ...`` holding every fragment; the files under
    ``watch`` are byte-identical afterwards. Returns the line."""
    before = tree_hash(watch) if watch is not None else None
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    if watch is not None:
        assert tree_hash(watch) == before
    return lines[0]


@pytest.fixture(scope="module")
def run(demo_root, tmp_path_factory):
    """A tiny trained pix2pixHD run (1 epoch) and the flags that name it."""
    checkpoints = tmp_path_factory.mktemp("bad_inputs")
    flags = tiny_flags(demo_root, checkpoints) + ["--niter_decay", "0"]
    assert train_main(flags) == 0
    common = ["--name", "tiny", "--checkpoints_dir", str(checkpoints), "--device", "cpu", "--no_progress"]
    return checkpoints, flags, common


@pytest.fixture(scope="module")
def feature_run(demo_root, tmp_path_factory):
    """A tiny --instance_feat run (2 iterations) with its cluster file."""
    checkpoints = tmp_path_factory.mktemp("bad_inputs_feat")
    flags = tiny_flags(demo_root, checkpoints) + [
        "--instance_feat",
        "--nef",
        "4",
        "--n_downsample_E",
        "2",
        "--max_iters",
        "2",
    ]
    assert train_main(flags) == 0
    common = ["--name", "tiny", "--checkpoints_dir", str(checkpoints), "--device", "cpu", "--no_progress"]
    assert encode_main(common + ["--n_clusters", "3"]) == 0
    return checkpoints, common, checkpoints / "tiny" / "features_clustered_003.npz"


# ----- every numeric flag has a range, and each range is enforced ------------------------------------------------


def _numeric_flags(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions if a.type in (int, float) and a.choices is None}


def test_every_numeric_flag_has_a_range():
    from synth.models.registry import MODELS

    found = set()
    for is_train in (True, False):
        for model in MODELS.names():
            parser = build_parser(is_train)
            add_model_options(parser, ["--model", model], is_train)
            found |= _numeric_flags(parser)
    missing = sorted(found - set(OPTION_RANGES))
    assert not missing, f"add a Range for these flags to OPTION_RANGES in options/validate.py: {missing}"


def _bad_values(rule: Range, integer: bool) -> list:
    """Values just outside ``rule`` (and NaN for float flags)."""
    values = []
    if rule.low is not None:
        values.append(rule.low if rule.open_low else rule.low - (1 if integer else 0.5))
    if rule.high is not None:
        values.append(rule.high if rule.open_high else rule.high + (1 if integer else 0.5))
    if not integer:
        values.append(math.nan)
    return [int(v) if integer else v for v in values]


def _flag_type(flag: str) -> type:
    model = MODEL_OF_FLAG.get(flag, "pix2pixHD")
    parser = build_parser(flag not in TEST_ONLY)
    add_model_options(parser, ["--model", model], flag not in TEST_ONLY)
    return next(a.type for a in parser._actions if a.dest == flag)


RANGE_CASES = [
    (flag, value) for flag, rule in OPTION_RANGES.items() for value in _bad_values(rule, _flag_type(flag) is int)
]


@pytest.mark.parametrize("flag, value", RANGE_CASES, ids=[f"{f}={v}" for f, v in RANGE_CASES])
def test_out_of_range_flag_on_the_command_line(run, flag, value, capsys):
    checkpoints, flags, common = run
    model = ["--model", MODEL_OF_FLAG[flag]] if flag in MODEL_OF_FLAG else []
    if flag in TEST_ONLY:
        argv = common + [f"--{flag}", str(value)]
        fails(synth_test_main, argv, capsys, f"--{flag} must be", watch=checkpoints)
    else:
        argv = flags + ["--name", "fresh"] + model + [f"--{flag}", str(value)]
        fails(train_main, argv, capsys, f"--{flag} must be", watch=checkpoints)


@pytest.mark.parametrize(
    "flag, value",
    [
        ("save_epoch_freq", 0),
        ("max_dataset_size", -1),
        ("max_iters", -5),
        ("seed", -1),
        ("niter_fix_global", -1),
        ("lr_decay_epochs", 0),
    ],
)
def test_out_of_range_flag_in_yaml(run, tmp_path, flag, value, capsys):
    checkpoints, flags, _ = run
    config = tmp_path / "c.yaml"
    config.write_text(f"{flag}: {value}\n")
    fails(
        train_main, flags + ["--name", "fresh", "--config", str(config)], capsys, f"--{flag} must be", watch=checkpoints
    )


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("niter: null\n", ("c.yaml", "'niter' needs a value")),
        ("niter: 1.9\n", ("c.yaml", "'niter' must be int", "1.9")),
        ("niter: true\n", ("c.yaml", "'niter' must be int")),
        ("niter: [1, 2]\n", ("c.yaml", "'niter' must be int")),
        ("lr: {a: 1}\n", ("c.yaml", "'lr' must be float")),
        ("name: null\n", ("c.yaml", "'name' needs a value")),
        ("cluster_choice: 2:0\n", ("c.yaml", "'cluster_choice' takes a list")),
    ],
)
def test_yaml_values_argparse_could_not_produce(run, tmp_path, text, fragments, capsys):
    checkpoints, flags, common = run
    config = tmp_path / "c.yaml"
    config.write_text(text)
    main, argv = (synth_test_main, common) if "cluster_choice" in text else (train_main, flags + ["--name", "fresh"])
    fails(main, argv + ["--config", str(config)], capsys, *fragments, watch=checkpoints)


def test_integral_yaml_numbers_and_null_defaults_still_parse(tmp_path):
    from synth.options import parse_train_options

    config = tmp_path / "c.yaml"
    config.write_text("niter: 3\nlr: 1\nvgg_weights: null\nwhich_epoch: 4\n")
    opt = parse_train_options(["--config", str(config)])
    assert (opt.niter, opt.lr, opt.vgg_weights, opt.which_epoch) == (3, 1.0, None, "4")


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", ""])
def test_which_epoch_is_latest_or_an_epoch_number(run, value, capsys):
    checkpoints, flags, common = run
    fails(
        synth_test_main,
        common + ["--which_epoch", value],
        capsys,
        "--which_epoch must be 'latest' or an epoch",
        watch=checkpoints,
    )
    fails(train_main, flags + ["--continue_train", "--which_epoch", value], capsys, "--which_epoch", watch=checkpoints)


def test_which_epoch_number_is_normalised():
    from synth.options import parse_test_options

    assert parse_test_options(["--which_epoch", "007"]).which_epoch == "7"


def test_cluster_choice_must_be_pairs(run, capsys):
    checkpoints, _, common = run
    fails(synth_test_main, common + ["--cluster_choice", "2-0"], capsys, "--cluster_choice", "'2-0'", watch=checkpoints)


def test_canny_thresholds_in_order(run, capsys):
    checkpoints, flags, _ = run
    fails(
        train_main,
        flags + ["--name", "fresh", "--canny_low", "0.5", "--canny_high", "0.2"],
        capsys,
        "--canny_low",
        watch=checkpoints,
    )


# ----- sizes against the network's stride and depth ---------------------------------------------------------------


def test_generator_too_deep_for_the_crop(run, capsys):
    checkpoints, flags, _ = run
    argv = flags + [
        "--name",
        "fresh",
        "--resize_or_crop",
        "resize_and_crop",
        "--loadSize",
        "64",
        "--fineSize",
        "32",
        "--n_downsample_global",
        "5",
    ]
    fails(train_main, argv, capsys, "--fineSize 32 is too small", "--n_downsample_global 5", watch=checkpoints)
    assert not (checkpoints / "fresh").exists()


@pytest.mark.parametrize(
    "flags_, fragment",
    [
        (["--resize_or_crop", "crop", "--fineSize", "18"], "--fineSize 18 is not a multiple of 4"),
        (["--resize_or_crop", "scale_width", "--loadSize", "30"], "--loadSize 30 is not a multiple of 4"),
        (["--resize_or_crop", "resize_and_crop", "--loadSize", "16", "--fineSize", "32"], "larger than --loadSize"),
    ],
)
def test_sizes_the_flags_fix(run, flags_, fragment, capsys):
    checkpoints, flags, _ = run
    fails(train_main, flags + ["--name", "fresh"] + flags_, capsys, fragment, watch=checkpoints)


def test_generator_too_deep_for_the_images_names_the_file(run, demo_root, capsys):
    checkpoints, flags, _ = run
    fails(
        train_main,
        flags + ["--name", "fresh", "--n_downsample_global", "5"],
        capsys,
        "demo_00000.png",
        "smaller than the",
        "total stride 32",
        watch=checkpoints,
    )


def test_images_smaller_than_the_network_at_test_time(run, tmp_path, capsys):
    checkpoints, _, common = run
    labels = tmp_path / "labels"
    labels.mkdir()
    insts = tmp_path / "insts"
    insts.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(labels / "small.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(insts / "small.png")
    argv = common + [
        "--dataset_mode",
        "labels",
        "--dataroot",
        str(labels),
        "--inst_dir",
        str(insts),
        "--results_dir",
        str(tmp_path / "res"),
    ]
    fails(synth_test_main, argv, capsys, "small.png", "smaller than the", watch=checkpoints)


def _copy_demo(demo_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    return root


def test_a_batch_of_differently_sized_images_names_the_first_odd_file(run, demo_root, tmp_path, capsys):
    checkpoints, flags, _ = run
    root = _copy_demo(demo_root, tmp_path)
    for folder in ("train_label", "train_inst", "train_img"):
        path = root / folder / "demo_00003.png"
        with Image.open(path) as img:
            img.resize((64, 48), Image.NEAREST).save(path)
    argv = flags + ["--name", "fresh", "--dataroot", str(root)]
    before = tree_hash(root)
    fails(train_main, argv, capsys, "demo_00003.png", "64x48", "demo_00000.png", "--batchSize 2", watch=checkpoints)
    assert tree_hash(root) == before
    from synth.data import create_dataset
    from synth.options import parse_train_options

    opt = parse_train_options(argv + ["--batchSize", "1"])
    opt.size_multiple = 4
    assert len(create_dataset(opt)) == 8  # one image per batch: any size is fine


# ----- lossy label maps -------------------------------------------------------------------------------------------


def test_jpeg_label_maps_are_refused_unless_allowed(run, demo_root, tmp_path, capsys):
    checkpoints, flags, _ = run
    root = _copy_demo(demo_root, tmp_path)
    png = root / "train_label" / "demo_00004.png"
    with Image.open(png) as img:
        img.save(png.with_suffix(".jpg"), quality=95)
    png.unlink()
    argv = flags + ["--name", "fresh", "--dataroot", str(root)]
    fails(train_main, argv, capsys, "demo_00004.jpg", "JPEG", "--allow_lossy_labels", watch=checkpoints)
    from synth.data import create_dataset
    from synth.options import parse_train_options

    opt = parse_train_options(argv + ["--allow_lossy_labels"])
    opt.size_multiple = 4
    assert any(s.label.suffix == ".jpg" for s in create_dataset(opt).samples)


# ----- output folders ---------------------------------------------------------------------------------------------


def test_results_dir_that_is_a_file(run, tmp_path, capsys):
    checkpoints, _, common = run
    (tmp_path / "res").write_text("not a folder")
    fails(
        synth_test_main,
        common + ["--results_dir", str(tmp_path / "res")],
        capsys,
        "--results_dir",
        "is a file",
        watch=checkpoints,
    )


def test_checkpoints_dir_that_is_a_file(run, tmp_path, capsys):
    _, flags, _ = run
    (tmp_path / "ck").write_text("x")
    fails(train_main, flags + ["--checkpoints_dir", str(tmp_path / "ck")], capsys, "--checkpoints_dir", watch=tmp_path)


# ----- nothing overwritten by surprise ----------------------------------------------------------------------------


def test_fresh_training_into_a_run_with_checkpoints_is_refused(run, capsys):
    checkpoints, flags, _ = run
    fails(train_main, flags, capsys, "latest.pt", "--continue_train", "--overwrite", watch=checkpoints)


def test_overwrite_starts_the_run_over(demo_root, tmp_path, capsys):
    flags = tiny_flags(demo_root, tmp_path)
    assert train_main(flags) == 0  # 2 epochs: latest.pt, epoch_002.pt
    assert train_main(flags + ["--niter_decay", "0", "--save_epoch_freq", "1", "--overwrite"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "tiny").glob("*.pt")) == ["epoch_001.pt", "latest.pt"]
    from synth.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "tiny" / "latest.pt")["progress"]["epoch"] == 2
    assert "overwrite" not in load_checkpoint(tmp_path / "tiny" / "latest.pt")["options"]


def test_import_refuses_to_replace_a_trained_run(run, tmp_path, capsys):
    checkpoints, _, _ = run
    source = tmp_path / "pix2pixhd"
    source.mkdir()
    (source / "latest_net_G.pth").write_bytes(b"x")
    argv = [
        "--pix2pixhd_dir",
        str(source),
        "--name",
        "tiny",
        "--checkpoints_dir",
        str(checkpoints),
        "--label_nc",
        "5",
        "--ngf",
        "4",
        "--n_downsample_global",
        "2",
        "--n_blocks_global",
        "1",
        "--device",
        "cpu",
    ]
    fails(import_main, argv, capsys, "tiny/latest.pt", "--overwrite", watch=checkpoints)
    # with --overwrite it goes on (and here fails on the fake generator file, leaving the run as it was)
    fails(import_main, argv + ["--overwrite"], capsys, "latest_net_G.pth", watch=checkpoints)


@pytest.mark.slow
def test_encode_features_refuses_to_replace_clusters_and_an_empty_result(feature_run, capsys):
    checkpoints, common, clusters = feature_run
    fails(
        encode_main,
        common + ["--n_clusters", "3"],
        capsys,
        "features_clustered_003.npz",
        "--overwrite",
        watch=checkpoints,
    )
    fails(
        encode_main,
        common + ["--n_clusters", "3", "--overwrite", "--min_area_fraction", "0.99"],
        capsys,
        "no instance",
        "--min_area_fraction 0.99",
        watch=checkpoints,
    )
    fails(
        encode_main,
        common + ["--n_clusters", "4", "--min_area_fraction", "0.99"],
        capsys,
        "no instance",
        watch=checkpoints,
    )
    assert not (checkpoints / "tiny" / "features_clustered_004.npz").exists()


# ----- one reader per kind of file -------------------------------------------------------------------------------


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes() if path.exists() else b""
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "junk":
        path.write_bytes(b"this is no archive" * 20)
    elif how == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    elif how == "folder":
        path.unlink(missing_ok=True)
        path.mkdir()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["empty", "truncated", "junk", "npy", "folder", "missing"])
def test_damaged_cluster_files(feature_run, tmp_path, how, capsys):
    checkpoints, common, clusters = feature_run
    bad = tmp_path / "clusters.npz"
    shutil.copy(clusters, bad)
    if how == "missing":
        bad.unlink()
    else:
        _damage(bad, how)
    fails(
        synth_test_main,
        common + ["--cluster_path", str(bad), "--results_dir", str(tmp_path / "res")],
        capsys,
        str(bad),
        "feature cluster file",
        watch=checkpoints,
    )


MISMATCHED_CLUSTERS = {
    "feat_num": ({"feat_num": np.array(4), "classes": np.array([1]), "centers_1": np.zeros((2, 4))}, "--feat_num"),
    "class": ({"feat_num": np.array(3), "classes": np.array([9]), "centers_9": np.zeros((2, 3))}, "--label_nc"),
    "shape": ({"feat_num": np.array(3), "classes": np.array([1]), "centers_1": np.zeros((2, 5))}, "centers_1"),
    "absent": ({"feat_num": np.array(3), "classes": np.array([1, 2]), "centers_1": np.zeros((2, 3))}, "centers_2"),
    "none": ({"feat_num": np.array(3), "classes": np.zeros(0, np.int64)}, "no clusters"),
    "nan": ({"feat_num": np.array(3), "classes": np.array([1]), "centers_1": np.full((2, 3), np.nan)}, "NaN"),
    "no_feat_num": ({"classes": np.array([1]), "centers_1": np.zeros((2, 3))}, "feat_num"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(MISMATCHED_CLUSTERS))
def test_mismatched_cluster_files(feature_run, tmp_path, case, capsys):
    checkpoints, common, _ = feature_run
    arrays, fragment = MISMATCHED_CLUSTERS[case]
    bad = save_arrays(tmp_path / "clusters.npz", arrays)
    fails(
        synth_test_main,
        common + ["--cluster_path", str(bad), "--results_dir", str(tmp_path / "res")],
        capsys,
        str(bad),
        fragment,
        watch=checkpoints,
    )


@pytest.mark.parametrize("how", ["empty", "truncated", "junk", "npy", "folder", "missing"])
def test_damaged_cluster_file_reader(tmp_path, how):
    path = FeatureClusters(3, {1: np.zeros((2, 3), np.float32)}).save(tmp_path / "c.npz")
    assert FeatureClusters.load(path).feat_num == 3
    if how == "missing":
        path.unlink()
    else:
        _damage(path, how)
    with pytest.raises(DataError, match="c.npz: .*feature cluster file") as info:
        FeatureClusters.load(path)
    assert len(str(info.value).splitlines()) == 1


def _fid_stats(path: Path, mu, sigma, features=None) -> Path:
    arrays = {"mu": mu, "sigma": sigma} | ({"features": features} if features is not None else {})
    return save_arrays(path, arrays)


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("empty", "is empty"),
        ("truncated", "truncated"),
        ("junk", "not an npz"),
        ("missing", "not found"),
        ("no_sigma", "'sigma'"),
        ("sigma_shape", "'sigma' is 3x3 but 'mu' has 4"),
        ("features_dims", "'features' are 3-d"),
        ("nan", "NaN"),
        ("mu_2d", "'mu' has shape"),
    ],
)
def test_damaged_or_mismatched_fid_statistics(tmp_path, case, fragment):
    path = tmp_path / "stats.npz"
    good = _fid_stats(path, np.zeros(4), np.eye(4), np.zeros((5, 4)))
    mu, sigma, feats = load_statistics(good)
    assert mu.shape == (4,) and sigma.shape == (4, 4) and feats.shape == (5, 4)
    if case in ("empty", "truncated", "junk"):
        _damage(path, case)
    elif case == "missing":
        path.unlink()
    elif case == "no_sigma":
        save_arrays(path, {"mu": np.zeros(4)})
    elif case == "sigma_shape":
        _fid_stats(path, np.zeros(4), np.eye(3))
    elif case == "features_dims":
        _fid_stats(path, np.zeros(4), np.eye(4), np.zeros((5, 3)))
    elif case == "nan":
        _fid_stats(path, np.full(4, np.nan), np.eye(4))
    elif case == "mu_2d":
        _fid_stats(path, np.zeros((2, 2)), np.eye(4))
    with pytest.raises(DataError, match=fragment) as info:
        load_statistics(path)
    assert str(path) in str(info.value) and len(str(info.value).splitlines()) == 1


def test_fid_statistics_of_other_dims_through_synth_eval(tmp_path, capsys):
    images = tmp_path / "res" / "images"
    images.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(images / f"s{i}_synthesized_image.png")
    stats = _fid_stats(tmp_path / "stats.npz", np.zeros(2048), np.eye(2048, dtype=np.float32))
    argv = [
        "--results_dir",
        str(tmp_path / "res"),
        "--dataset",
        "cityscapes",
        "--no_seg",
        "--real_stats",
        str(stats),
        "--fid_weights",
        "random",
        "--fid_dims",
        "64",
        "--device",
        "cpu",
        "--no_progress",
    ]
    fails(eval_main, argv, capsys, "stats.npz", "2048-d", "--fid_dims is 64", watch=tmp_path)


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("junk", "not a direction file"),
        ("no_intercept", "'intercept'"),
        ("zero", "zero 'normal'"),
        ("normal_2d", "'normal' has shape"),
    ],
)
def test_damaged_direction_files(tmp_path, case, fragment):
    path = tmp_path / "d.npz"
    if case == "junk":
        path.write_bytes(b"junk")
    elif case == "no_intercept":
        save_arrays(path, {"normal": np.ones(3)})
    elif case == "zero":
        save_arrays(path, {"normal": np.zeros(3), "intercept": np.array(0.0)})
    else:
        save_arrays(path, {"normal": np.ones((2, 3)), "intercept": np.array(0.0)})
    with pytest.raises(DataError, match=fragment):
        load_direction(path)


def test_mismatched_pseudo_label_file(tmp_path):
    good = PseudoLabels(
        ["a"],
        ["k1", "k2"],
        np.array([1000, 1001]),
        np.zeros((2, 1)),
        np.zeros(1),
        np.ones(1),
        np.ones((1, 3)),
        np.zeros(1),
    )
    path = good.save(tmp_path / "p.npz")
    assert PseudoLabels.load(path).keys == ["k1", "k2"]
    save_arrays(path, {**{k: v for k, v in np.load(path).items()}, "ids": np.array([1000])})
    with pytest.raises(DataError, match=r"p.npz: pseudo-label file array 'ids' has shape \(1,\), expected \(2,\)"):
        PseudoLabels.load(path)


@pytest.mark.parametrize(
    "how, fragment",
    [
        ("empty", "not a readable checkpoint"),
        ("truncated", "checkpoint"),
        ("junk", "checkpoint"),
        ("no_nets", "no 'nets'"),
    ],
)
def test_damaged_checkpoints(run, tmp_path, how, fragment, capsys):
    checkpoints, _, _ = run
    copy = tmp_path / "ck" / "tiny"
    shutil.copytree(checkpoints / "tiny", copy)
    latest = copy / "latest.pt"
    if how == "no_nets":
        state = torch.load(latest, weights_only=True)
        del state["nets"]
        torch.save(state, latest)
    else:
        _damage(latest, how)
    argv = [
        "--name",
        "tiny",
        "--checkpoints_dir",
        str(tmp_path / "ck"),
        "--device",
        "cpu",
        "--results_dir",
        str(tmp_path / "res"),
    ]
    fails(synth_test_main, argv, capsys, "latest.pt", fragment, watch=tmp_path / "ck")


@pytest.mark.parametrize("how", ["empty", "header_only", "folder"])
def test_damaged_label_maps_are_named_before_the_first_batch(run, demo_root, tmp_path, how, capsys):
    checkpoints, flags, _ = run
    root = _copy_demo(demo_root, tmp_path)
    label = root / "train_label" / "demo_00005.png"
    if how == "empty":
        label.write_bytes(b"")
    elif how == "header_only":
        label.write_bytes(label.read_bytes()[:20])
    else:
        label.unlink()
        label.mkdir()
    err = fails(train_main, flags + ["--name", "fresh", "--dataroot", str(root)], capsys, watch=checkpoints)
    assert "demo_00005" in err or how == "folder"  # a folder is no label map: its photo is then unmatched


def test_image_reader_names_the_file(tmp_path):
    from synth.data.io import image_size

    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(DataError, match="x.png: "):
        image_size(tmp_path / "x.png")
    with pytest.raises(DataError, match="y.png: file not found"):
        image_size(tmp_path / "y.png")


def test_array_reader_refuses_pickles(tmp_path):
    from synth.core.arrays_file import load_arrays

    path = tmp_path / "p.npz"
    with zipfile.ZipFile(path, "w") as z:
        with z.open("a.npy", "w") as f:
            np.save(f, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="p.npz: not a thing"):
        load_arrays(path, "thing")


# ----- the commands' own flags ------------------------------------------------------------------------------------

COMMAND_CASES = [
    (encode_main, ["--min_area_fraction", "1.5"], "--min_area_fraction must be in [0, 1)"),
    (ghfeat_main, ["cluster", "--k", "0"], "--k must be at least 1"),
    (ghfeat_main, ["nope"], "invalid choice"),
    (selfcond_main, ["sweep", "--steps", "1"], "--steps must be at least 2"),
    (selfcond_main, ["direction", "--instance", "-1"], "--instance must be at least 0"),
    (export_main, ["--height", "0"], "--height must be at least 1"),
    (export_main, ["--opset", "3"], "--opset must be at least 7"),
    (edit_main, ["--label", "x.png", "--out"], "expected one argument"),
]
#: Commands that take no run flags.
STANDALONE_CASES = [
    (eval_main, ["--batch_size", "0"], "--batch_size must be at least 1"),
    (eval_main, ["--kid_subset_size", "1"], "--kid_subset_size must be at least 2"),
    (demo_data_main, ["--out", "x", "--n_train", "0"], "--n_train must be at least 1"),
    (demo_data_main, ["--out", "x", "--size", "a", "b"], "invalid int value"),
]


@pytest.mark.parametrize(
    "main, argv, fragment", COMMAND_CASES, ids=[f"{m.__module__.rsplit('.', 1)[1]}{a[:2]}" for m, a, _ in COMMAND_CASES]
)
def test_command_flags_out_of_range(run, main, argv, fragment, capsys):
    checkpoints, _, common = run
    fails(main, argv + common, capsys, fragment, watch=checkpoints)


@pytest.mark.parametrize(
    "main, argv, fragment",
    STANDALONE_CASES,
    ids=[f"{m.__module__.rsplit('.', 1)[1]}{a[:2]}" for m, a, _ in STANDALONE_CASES],
)
def test_standalone_command_flags_out_of_range(tmp_path, main, argv, fragment, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fails(main, argv, capsys, fragment, watch=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_edit_refuses_a_jpeg_label_map(feature_run, tmp_path, capsys):
    checkpoints, common, _ = feature_run
    label = tmp_path / "l.jpg"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(label)
    fails(
        edit_main,
        common + ["--label", str(label), "--out", str(tmp_path / "out")],
        capsys,
        "l.jpg",
        "JPEG",
        watch=checkpoints,
    )


def test_ghfeat_and_selfcond_need_their_kind_of_run(run, capsys):
    checkpoints, _, common = run
    fails(ghfeat_main, ["cluster"] + common, capsys, "not a GH-Feat", watch=checkpoints)
    fails(selfcond_main, ["direction", "--method", "kmeans"] + common, capsys, "not a instance-code", watch=checkpoints)


# ----- no traceback reaches the user -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, argv, fragment",
    [
        ("train", ["--which_epoch", "abc", "--continue_train"], "--which_epoch"),
        ("test", ["--name", "x", "--how_many", "-3"], "--how_many"),
        ("ghfeat", ["nope"], "invalid choice"),
    ],
)
def test_no_traceback_in_a_real_process(tmp_path, module, argv, fragment):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = f"import sys; from synth.commands.{module} import main; sys.exit(main())"
    out = subprocess.run(
        [sys.executable, "-c", code, *argv, "--checkpoints_dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], (
        out.stderr
    )
    assert list(tmp_path.iterdir()) == []
