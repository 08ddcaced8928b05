"""Training logs: wandb in offline mode writes a local run; the page and loss log are covered in test_trainer."""

import os

import pytest

from synth.options import parse_train_options
from synth.trainer import Trainer
from tests.conftest import tiny_flags


@pytest.mark.slow
def test_wandb_offline_run_is_written_locally(demo_root, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    flags = [f for f in tiny_flags(demo_root, tmp_path) if f != "--no_wandb"]
    flags += ["--max_iters", "2", "--print_freq", "2"]
    Trainer(parse_train_options(flags)).train()
    runs = list((tmp_path / "tiny" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(p.suffix == ".wandb" for p in runs[0].iterdir())
    assert os.environ.get("WANDB_MODE") is None
