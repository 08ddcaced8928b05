"""End to end through the command-line entry points, and one clear line for each kind of bad input."""

import shutil

import numpy as np
import pytest
from PIL import Image

from synth.checkpoint import load_checkpoint, save_checkpoint
from synth.commands.test import main as synth_test
from synth.commands.train import main as synth_train
from tests.conftest import SHARED_CITYSCAPES, tiny_flags

pytestmark = pytest.mark.slow


def run_ok(main, argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def run_fails(main, argv, capsys) -> str:
    """The command exits 2 with exactly one line on stderr and no traceback; returns that line."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


def test_train_then_test_on_demo_data(demo_root, tmp_path, capsys):
    out = run_ok(synth_train, tiny_flags(demo_root, tmp_path / "ck"), capsys)
    assert "latest.pt" in out
    results = tmp_path / "res"
    # no architecture flags at test time: they come from the checkpoint
    run_ok(synth_test, ["--name", "tiny", "--checkpoints_dir", str(tmp_path / "ck"), "--results_dir", str(results),
                       "--device", "cpu", "--no_progress"], capsys)
    page = results / "tiny" / "test_latest" / "index.html"
    html = page.read_text()
    assert html.count("<img") == 9  # 3 test scenes x (label, synthesized, real)
    image = np.asarray(Image.open(results / "tiny" / "test_latest" / "images" / "demo_00000_synthesized_image.png"))
    assert image.shape == (32, 32, 3) and image.std() > 0


def test_label_only_inference(demo_root, tmp_path, capsys):
    run_ok(synth_train, tiny_flags(demo_root, tmp_path / "ck"), capsys)
    labels = tmp_path / "labels"
    shutil.copytree(demo_root / "test_label", labels)
    run_ok(synth_test, ["--name", "tiny", "--checkpoints_dir", str(tmp_path / "ck"), "--dataset_mode", "labels",
                       "--dataroot", str(labels), "--inst_dir", str(demo_root / "test_inst"),
                       "--results_dir", str(tmp_path / "res"), "--device", "cpu", "--no_progress"], capsys)
    names = {p.name for p in (tmp_path / "res" / "tiny" / "test_latest" / "images").iterdir()}
    assert "demo_00001_synthesized_image.png" in names and not any("real_image" in n for n in names)


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_CITYSCAPES.is_dir(), reason="../shared/data/cityscapes_samples is absent")
def test_train_and_test_on_cityscapes_samples(tmp_path, capsys):
    flags = tiny_flags(SHARED_CITYSCAPES, tmp_path / "ck", name="city") + [
        "--label_nc", "35", "--resize_or_crop", "scale_width", "--loadSize", "128", "--max_iters", "2",
        "--batchSize", "1",
    ]
    run_ok(synth_train, flags, capsys)
    run_ok(synth_test, ["--name", "city", "--checkpoints_dir", str(tmp_path / "ck"), "--phase", "train",
                       "--how_many", "2", "--results_dir", str(tmp_path / "res"), "--device", "cpu", "--no_progress"],
           capsys)
    images = tmp_path / "res" / "city" / "train_latest" / "images"
    label = np.asarray(Image.open(next(images.glob("*_input_label.png"))))
    assert label.shape == (64, 128, 3)
    # Cityscapes colours: road (id 7) is (128, 64, 128) in the official table
    assert (label.reshape(-1, 3) == [128, 64, 128]).all(axis=1).any()


# ----- bad input: one line naming the file, exit 2, nothing written is damaged -------------------------------

def copy_demo(demo_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    return root


def test_missing_and_empty_folders(tmp_path, capsys):
    err = run_fails(synth_train, tiny_flags(tmp_path / "nowhere", tmp_path / "ck"), capsys)
    assert "nowhere" in err and "not found" in err
    (tmp_path / "empty" / "train_label").mkdir(parents=True)
    (tmp_path / "empty" / "train_img").mkdir()
    (tmp_path / "empty" / "train_inst").mkdir()
    err = run_fails(synth_train, tiny_flags(tmp_path / "empty", tmp_path / "ck"), capsys)
    assert "train_label" in err and "no label maps found" in err


def test_image_without_label(demo_root, tmp_path, capsys):
    root = copy_demo(demo_root, tmp_path)
    (root / "train_label" / "demo_00003.png").unlink()
    err = run_fails(synth_train, tiny_flags(root, tmp_path / "ck"), capsys)
    assert "demo_00003.png" in err


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("garbage", "demo_0000"),
        ("truncated", "truncated"),
        ("rgb_label", "channels"),
        ("label_range", "label_nc"),
        ("size_mismatch", "size"),
        ("missing_inst", "--no_instance"),
    ],
)
def test_bad_files_keep_the_checkpoint_intact(demo_root, tmp_path, capsys, damage, expected):
    root = copy_demo(demo_root, tmp_path)
    run_ok(synth_train, tiny_flags(root, tmp_path / "ck") + ["--max_iters", "1"], capsys)
    latest = tmp_path / "ck" / "tiny" / "latest.pt"
    before = latest.read_bytes()
    label = root / "train_label" / "demo_00002.png"
    if damage == "garbage":
        label.write_bytes(b"\x89PNG not really")
    elif damage == "truncated":
        data = label.read_bytes()
        label.write_bytes(data[: len(data) // 2])
    elif damage == "rgb_label":
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(label)
    elif damage == "label_range":
        Image.fromarray(np.full((32, 32), 9, np.uint8)).save(label)
    elif damage == "size_mismatch":
        Image.fromarray(np.zeros((16, 32), np.uint8)).save(label)
    elif damage == "missing_inst":
        (root / "train_inst" / "demo_00002.png").unlink()
    err = run_fails(synth_train, tiny_flags(root, tmp_path / "ck") + ["--continue_train", "--serial_batches"], capsys)
    assert expected in err
    if damage != "missing_inst":
        assert "demo_00002.png" in err
    assert latest.read_bytes() == before


def test_bad_file_reported_from_a_worker_process(demo_root, tmp_path, capsys):
    root = copy_demo(demo_root, tmp_path)
    Image.fromarray(np.full((32, 32), 9, np.uint8)).save(root / "train_label" / "demo_00001.png")
    flags = tiny_flags(root, tmp_path / "ck") + ["--serial_batches"]
    flags[flags.index("--nThreads") + 1] = "1"
    err = run_fails(synth_train, flags, capsys)
    assert "demo_00001.png" in err and "label_nc" in err


def test_yaml_key_that_is_no_flag(demo_root, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("ngf: 4\nlearning_rate: 0.1\n")
    err = run_fails(synth_train, tiny_flags(demo_root, tmp_path / "ck") + ["--config", str(config)], capsys)
    assert "bad.yaml" in err and "learning_rate" in err


def test_checkpoint_of_another_architecture(demo_root, tmp_path, capsys):
    run_ok(synth_train, tiny_flags(demo_root, tmp_path / "ck") + ["--max_iters", "1"], capsys)
    test_flags = ["--name", "tiny", "--checkpoints_dir", str(tmp_path / "ck"), "--device", "cpu", "--no_progress",
                  "--results_dir", str(tmp_path / "res")]
    err = run_fails(synth_test, test_flags + ["--ngf", "8"], capsys)
    assert "latest.pt" in err and "--ngf 4" in err
    # a checkpoint whose weights do not fit the architecture it claims
    latest = tmp_path / "ck" / "tiny" / "latest.pt"
    state = load_checkpoint(latest)
    state["options"]["n_blocks_global"] = 3
    save_checkpoint(latest, state)
    err = run_fails(synth_test, test_flags, capsys)
    assert "latest.pt" in err and "another architecture" in err


def test_missing_checkpoint(tmp_path, capsys):
    err = run_fails(synth_test, ["--name", "none", "--checkpoints_dir", str(tmp_path), "--device", "cpu"], capsys)
    assert "latest.pt: checkpoint not found" in err
