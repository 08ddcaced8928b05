"""torchrun with 2 CPU processes (gloo) gives the weights of one process with the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from synth.checkpoint import load_checkpoint
from synth.options import parse_train_options
from synth.trainer import EpochSampler, Trainer
from tests.conftest import tiny_flags

REPO = Path(__file__).resolve().parents[1]


def cancelled_biases(net: nn.Module) -> set[str]:
    """Names of conv biases directly followed by an affine-free InstanceNorm, which removes them exactly."""
    names = set()
    for prefix, module in net.named_modules():
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (name, layer), (_, after) in zip(children, children[1:], strict=False):
                if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d) and isinstance(after, nn.InstanceNorm2d):
                    names.add(f"{prefix}.{name}.bias" if prefix else f"{name}.bias")
    return names


def test_ranks_share_the_epoch_order_without_overlap():
    shares = []
    for rank in range(3):
        sampler = EpochSampler(10, seed=5, shuffle=True, rank=rank, world_size=3)
        sampler.set_epoch(4)
        shares.append(list(sampler))
        order = sampler.order()
    assert [len(s) for s in shares] == [4, 4, 4]  # padded to equal shares
    assert set(shares[0] + shares[1] + shares[2]) == set(range(10))
    assert shares[1][:3] == order[1:9:3]


@pytest.mark.slow
def test_two_processes_equal_one_with_the_same_global_batch(demo_root, tmp_path):
    flags = tiny_flags(demo_root, tmp_path / "ddp") + ["--max_iters", "3", "--batchSize", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(REPO / "train.py"), *flags],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    single = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path / "one") + ["--max_iters", "3"]))
    single.train()
    two = load_checkpoint(tmp_path / "ddp" / "tiny" / "latest.pt")
    one = load_checkpoint(tmp_path / "one" / "tiny" / "latest.pt")
    assert two["progress"] == one["progress"]  # images are counted globally
    for net_name, net in single.model.networks().items():
        dead = cancelled_biases(net)
        assert dead  # instance norm follows most convolutions
        for key, value in one["nets"][net_name].items():
            # A bias that instance norm cancels has an exactly-zero gradient; Adam turns its round-off into +-lr steps.
            atol = 3 * 2 * single.opt.lr if key in dead else 1e-5
            torch.testing.assert_close(two["nets"][net_name][key], value, rtol=0, atol=atol, msg=f"{net_name}.{key}")
    assert not (tmp_path / "ddp" / "tiny" / "wandb").exists()
