"""pix2pixHD's flags parse: spellings fold into ours, the rest refuse with one line (never "unrecognized")."""

from __future__ import annotations

import os

import pytest

from synth.core.errors import OptionError
from synth.options import parse_test_options, parse_train_options
from tests.conftest import tiny_flags


@pytest.mark.parametrize("argv", [["--fp16"], ["--data_type", "16"]])
def test_fp16_refused_on_cpu_with_the_alternative(argv):
    with pytest.raises(OptionError, match="--amp bf16"):
        parse_train_options(argv + ["--device", "cpu"])


def test_data_type_32_and_8():
    assert parse_train_options(["--data_type", "32", "--device", "cpu"]).amp == "none"
    with pytest.raises(OptionError, match="int8"):
        parse_train_options(["--data_type", "8", "--device", "cpu"])


def test_debug_sets_pix2pixhd_debug_sizes():
    opt = parse_train_options(["--debug", "--device", "cpu"])
    assert (opt.max_dataset_size, opt.print_freq, opt.display_freq) == (2, 1, 1)


def test_local_rank_both_spellings(monkeypatch):
    for flag in ("--local_rank", "--local-rank"):
        monkeypatch.delenv("LOCAL_RANK", raising=False)
        assert parse_train_options([flag, "3", "--device", "cpu"]).local_rank == 3
        assert os.environ["LOCAL_RANK"] == "3"


def test_ntest_caps_how_many():
    assert parse_test_options(["--ntest", "3", "--device", "cpu"]).how_many == 3
    assert parse_test_options(["--ntest", "80", "--how_many", "5", "--device", "cpu"]).how_many == 5


def test_several_gpu_ids_point_to_torchrun():
    with pytest.raises(OptionError, match="torchrun --nproc_per_node 8"):
        parse_train_options(["--gpu_ids", "0,1,2,3,4,5,6,7"])


def test_image_pool_fills_then_returns_history_half_the_time():
    """pix2pixHD's ImagePool: the first pool_size images come back as they are; afterwards each query returns
    either the new image or one stored earlier (which the new one replaces), each about half the time."""
    import torch

    from synth.models.image_pool import ImagePool

    pool = ImagePool(4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 2, 3, 3)
    assert torch.equal(pool.query(first), first)
    seen = {float(v) for v in first[:, 0, 0, 0]}
    from_history = 0
    for step in range(200):
        new = torch.full((1, 2, 3, 3), 100.0 + step)
        out = pool.query(new)
        value = float(out[0, 0, 0, 0])
        assert value == 100.0 + step or value in seen  # never anything else
        from_history += value != 100.0 + step
        if value != 100.0 + step:  # the stored image handed out is replaced by the new one
            seen.discard(value)
            seen.add(100.0 + step)
        assert {float(v) for v in pool.images[:, 0, 0, 0]} == seen and pool.count == 4
    assert 70 < from_history < 130
    with pytest.raises(Exception, match="--pool_size needs one image size"):
        pool.query(torch.zeros(1, 2, 5, 5))


def test_image_pool_state_round_trips_and_is_refused_where_it_cannot_apply(monkeypatch):
    import torch

    from synth.models.image_pool import ImagePool

    pool = ImagePool(3, seed=5)
    pool.query(torch.randn(2, 1, 2, 2))
    copy = ImagePool(3, seed=99)
    copy.load_state_dict(pool.state_dict())
    batch = torch.randn(4, 1, 2, 2)
    assert torch.equal(pool.query(batch), copy.query(batch)) and torch.equal(pool.images, copy.images)
    with pytest.raises(OptionError, match="--model ecgan has none"):
        parse_train_options(["--model", "ecgan", "--pool_size", "5", "--device", "cpu"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(OptionError, match="under torchrun"):
        parse_train_options(["--pool_size", "5", "--device", "cpu"])


def test_export_onnx_then_onnx_synthesizes_what_torch_does(demo_root, tmp_path, capsys):
    """pix2pixHD's test.py --export_onnx FILE writes the generator; test.py --onnx FILE runs the split through
    onnxruntime, giving the torch results (to 8-bit rounding)."""
    import numpy as np
    from PIL import Image

    from synth.commands.test import main as synth_test
    from synth.commands.train import main as train_main

    assert train_main(tiny_flags(demo_root, tmp_path / "ck") + ["--niter_decay", "0"]) == 0
    common = ["--name", "tiny", "--checkpoints_dir", str(tmp_path / "ck"), "--device", "cpu", "--no_progress",
              "--how_many", "2"]
    onnx_file = tmp_path / "g.onnx"
    assert synth_test(common + ["--export_onnx", str(onnx_file)]) == 0
    assert onnx_file.is_file() and not (tmp_path / "torch").exists()
    assert synth_test(common + ["--results_dir", str(tmp_path / "torch")]) == 0
    assert synth_test(common + ["--results_dir", str(tmp_path / "ort"), "--onnx", str(onnx_file)]) == 0
    name = "tiny/test_latest/images/demo_00001_synthesized_image.png"
    by_torch = np.asarray(Image.open(tmp_path / "torch" / name)).astype(int)
    by_ort = np.asarray(Image.open(tmp_path / "ort" / name)).astype(int)
    assert by_torch.std() > 0 and np.abs(by_torch - by_ort).max() <= 1
    capsys.readouterr()
    assert synth_test(common + ["--onnx", str(tmp_path / "missing.onnx")]) == 2
    assert "--onnx" in capsys.readouterr().err and "no such file" in capsys.readouterr().err + "no such file"


def test_engine_without_tensorrt_says_so():
    with pytest.raises(OptionError, match="TensorRT"):
        parse_test_options(["--engine", "g.plan", "--device", "cpu"])


def test_display_winsize_accepted():
    assert parse_train_options(["--display_winsize", "256", "--device", "cpu"]).display_winsize == 256


def test_tf_log_writes_tensorboard_scalars_and_images(demo_root, tmp_path):
    """--tf_log: pix2pixHD's checkpoints/NAME/logs event files, with each loss term at its step and the visuals."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from synth.commands.train import main as train_main

    assert train_main(tiny_flags(demo_root, tmp_path) + ["--tf_log", "--niter_decay", "0"]) == 0
    logs = tmp_path / "tiny" / "logs"
    events = EventAccumulator(str(logs))
    events.Reload()
    scalars, images = events.Tags()["scalars"], events.Tags()["images"]
    assert {"G_GAN", "D_real", "D_fake"} <= set(scalars)
    steps = [e.step for e in events.Scalars("G_GAN")]
    assert steps == sorted(steps) and len(steps) == 2  # 8 images, batch 2, --print_freq 4: iterations 4 and 8
    text_log = (tmp_path / "tiny" / "loss_log.txt").read_text().splitlines()
    first_g_gan = float(text_log[0].split("G_GAN: ")[1].split()[0])
    assert abs(events.Scalars("G_GAN")[0].value - first_g_gan) < 1e-4
    assert "synthesized_image" in images


@pytest.mark.parametrize("ratio, shape", [(2.0, (32, 64)), (0.5, (64, 32))])
def test_aspect_ratio_and_display_winsize_shape_the_results(demo_root, tmp_path, ratio, shape):
    """--aspect_ratio stretches the saved pictures (labels by nearest, so their colours stay the palette's);
    --display_winsize is the width of the images on the page."""
    import numpy as np
    from PIL import Image

    from synth.commands.test import main as synth_test
    from synth.commands.train import main as train_main

    assert train_main(tiny_flags(demo_root, tmp_path / "ck") + ["--niter_decay", "0"]) == 0
    results = tmp_path / "res"
    argv = ["--name", "tiny", "--checkpoints_dir", str(tmp_path / "ck"), "--results_dir", str(results),
            "--device", "cpu", "--no_progress", "--how_many", "1", "--aspect_ratio", str(ratio),
            "--display_winsize", "100"]
    assert synth_test(argv) == 0
    out = results / "tiny" / "test_latest"
    fake = np.asarray(Image.open(out / "images" / "demo_00000_synthesized_image.png"))
    label = np.asarray(Image.open(out / "images" / "demo_00000_input_label.png"))
    assert fake.shape[:2] == shape and label.shape[:2] == shape
    plain = np.asarray(Image.open(demo_root / "test_label" / "demo_00000.png"))
    assert len(np.unique(label.reshape(-1, 3), axis=0)) == len(np.unique(plain))
    html = (out / "index.html").read_text()
    assert html.count("width='100'") == 3 and "width='256'" not in html


@pytest.mark.parametrize("net", ["global", "local"])
def test_use_dropout_puts_pix2pixhd_dropout_in_the_residual_blocks(net):
    import torch

    from synth.models.networks import build_generator

    argv = ["--netG", net, "--ngf", "4", "--n_downsample_global", "1", "--n_blocks_global", "2", "--device", "cpu"]
    with_dropout = build_generator(parse_train_options(argv + ["--use_dropout"]), 3)
    plain = build_generator(parse_train_options(argv), 3)
    rates = [m.p for m in with_dropout.modules() if isinstance(m, torch.nn.Dropout)]
    blocks = 2 + (3 if net == "local" else 0)  # pix2pixHD's local enhancer has 3 blocks by default
    assert rates == [0.5] * blocks and not any(isinstance(m, torch.nn.Dropout) for m in plain.modules())
    x = torch.randn(1, 3, 16, 16)
    with_dropout.train()
    assert not torch.equal(with_dropout(x), with_dropout(x))  # training draws a new mask per pass
    with_dropout.eval()
    assert torch.equal(with_dropout(x), with_dropout(x))


def test_use_dropout_is_an_architecture_flag_and_refused_where_it_cannot_apply(demo_root, tmp_path):
    from synth.checkpoint import checkpoint_path, load_checkpoint, merge_architecture
    from synth.commands.train import main as train_main

    assert train_main(tiny_flags(demo_root, tmp_path) + ["--use_dropout", "--niter_decay", "0"]) == 0
    test_opt = parse_test_options(["--name", "tiny", "--checkpoints_dir", str(tmp_path), "--device", "cpu"])
    path = checkpoint_path(test_opt, "latest")
    assert test_opt.use_dropout is False
    merge_architecture(test_opt, load_checkpoint(path)["options"], path)
    assert test_opt.use_dropout is True
    with pytest.raises(OptionError, match="--use_dropout applies to pix2pixHD's global and local"):
        parse_train_options(["--model", "ecgan", "--use_dropout", "--device", "cpu"])
