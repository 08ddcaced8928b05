"""A loss term that cannot apply stops the run with one line, or is switched off by a flag the run records:
GH-Feat's perceptual term without VGG weights, the modulated model's band-control term under DDP."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from synth.commands.train import main as train_main
from synth.core.errors import OptionError
from synth.options import parse_train_options
from synth.trainer import Trainer
from tests.conftest import tiny_flags

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def modulated_run(demo_root, tmp_path_factory) -> Path:
    """A one-iteration tiny --model modulated run, the generator GH-Feat inverts."""
    ck = tmp_path_factory.mktemp("fallbacks")
    Trainer(
        parse_train_options(tiny_flags(demo_root, ck, "mod") + ["--model", "modulated", "--max_iters", "1"])
    ).train()
    return ck / "mod"


def _ghfeat_flags(demo_root, tmp_path, modulated_run, *extra: str) -> list[str]:
    flags = [f for f in tiny_flags(demo_root, tmp_path, "gh") if f != "--no_vgg_loss"]
    return flags + ["--model", "ghfeat", "--ghfeat_generator", str(modulated_run), "--max_iters", "1", *extra]


def test_ghfeat_without_vgg_weights_stops_with_one_line(demo_root, tmp_path, modulated_run, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_torch_home"))  # no cached VGG19 file
    assert train_main(_ghfeat_flags(demo_root, tmp_path, modulated_run)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: VGG19 weights not found at ") and "--no_vgg_loss" in err[0]
    assert not (tmp_path / "gh" / "latest.pt").exists()


@pytest.mark.parametrize("switch", [["--no_vgg_loss"], ["--lambda_perceptual", "0"]])
def test_ghfeat_perceptual_term_is_off_only_by_a_recorded_flag(
    demo_root, tmp_path, modulated_run, monkeypatch, capsys, switch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_torch_home"))
    trainer = Trainer(parse_train_options(_ghfeat_flags(demo_root, tmp_path, modulated_run, *switch)))
    out = trainer.train_step(next(iter(trainer.loader)))
    assert "E_perceptual" not in out.g_losses and {"E_mse", "E_adv"} <= set(out.g_losses)
    trainer.train()
    assert "perceptual" not in capsys.readouterr().err
    saved = yaml.safe_load((tmp_path / "gh" / "opt.yaml").read_text())
    recorded = saved["no_vgg_loss"] if switch == ["--no_vgg_loss"] else saved["lambda_perceptual"] == 0
    assert recorded is True


def test_modulated_band_term_under_ddp_stops_unless_switched_off(demo_root, tmp_path):
    opt = parse_train_options(tiny_flags(demo_root, tmp_path) + ["--model", "modulated"])
    model = Trainer(opt).model
    with pytest.raises(
        OptionError,
        match=r"^--model modulated under torchrun cannot apply the band-control term "
        r".*pass --lambda_band 0 to train without it$",
    ):
        model.use_runners({"G": model.netG, "E": model.netE, "D": model.netD})
    model.opt.lambda_band = 0
    model.use_runners({"G": model.netG, "E": model.netE, "D": model.netD})
    assert "G_band" not in model.compute_losses(next(iter(Trainer(opt).loader))).g_losses


@pytest.mark.slow
def test_modulated_under_torchrun_says_so(demo_root, tmp_path):
    flags = tiny_flags(demo_root, tmp_path) + ["--model", "modulated", "--max_iters", "1", "--batchSize", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(REPO / "train.py"),
            *flags,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines and all("cannot apply the band-control term" in line and "--lambda_band 0" in line for line in lines)
    assert not (tmp_path / "tiny" / "latest.pt").exists()
