"""Checkpoints: atomic writes, weights_only loading, architecture checks."""

import argparse

import pytest
import torch
from torch import nn

from synth.checkpoint import load_checkpoint, load_net_state, merge_architecture, save_checkpoint
from synth.core.atomic import atomic_write
from synth.core.errors import CheckpointError, OptionError


def test_round_trip(tmp_path):
    state = {"nets": {"G": nn.Linear(3, 2).state_dict()}, "options": {"ngf": 8}, "progress": {"epoch": 3}}
    path = save_checkpoint(tmp_path / "latest.pt", state)
    loaded = load_checkpoint(path)
    assert loaded["options"] == {"ngf": 8} and loaded["progress"]["epoch"] == 3
    assert torch.equal(loaded["nets"]["G"]["weight"], state["nets"]["G"]["weight"])


def test_interrupted_write_keeps_the_old_file(tmp_path):
    path = save_checkpoint(tmp_path / "latest.pt", {"options": {"ngf": 8}})
    before = path.read_bytes()

    def crash(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, crash)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]  # no temporary file left behind


def test_unreadable_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt: not a readable checkpoint"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a synth checkpoint"):
        load_checkpoint(foreign)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "synth-checkpoint-v1", "obj": argparse.Namespace(a=1)}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_other_architecture_is_a_clear_error(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 3, 3))
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 3, 3)).state_dict()
    with pytest.raises(CheckpointError, match=r"another architecture \('0.weight' is \(4, 3, 3, 3\) there"):
        load_net_state(net, other, "G", tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="missing '1.weight'"):
        load_net_state(net, {k: v for k, v in net.state_dict().items() if k.startswith("0.")}, "G", tmp_path)


def test_merge_architecture_takes_saved_values_and_refuses_contradictions(tmp_path):
    opt = argparse.Namespace(ngf=64, netG="global", model="pix2pixHD", explicit=["name"])
    merge_architecture(opt, {"ngf": 16, "netG": "local"}, tmp_path / "latest.pt")
    assert (opt.ngf, opt.netG) == (16, "local")
    opt = argparse.Namespace(ngf=32, model="pix2pixHD", explicit=["ngf"])
    with pytest.raises(OptionError, match="was trained with --ngf 16, but --ngf 32 was given"):
        merge_architecture(opt, {"ngf": 16}, tmp_path / "latest.pt")
