"""Kill -9 a tiny pix2pixHD run at seeded points (inside a step, inside a save between the temporary write and the
rename, between latest.pt and an epoch snapshot), resume it each time with --continue_train: it ends with the
weights and epoch snapshots of a run never killed, no temporary file left and every epoch snapshot present.

The kill points are injected by a driver script that this test writes (monkeypatching in the child process only);
the library has no fault hook."""

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from synth.checkpoint import load_checkpoint
from tests.conftest import tiny_flags

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SNAPSHOTS = ["epoch_001.pt", "epoch_002.pt", "epoch_003.pt", "epoch_004.pt"]

DRIVER = """
import os, signal, sys
import synth.core.checkpoint_file as checkpoint_file
import synth.core.atomic as atomic
import synth.trainer as trainer

kind, n = os.environ["FAULT_POINT"].split(":")
n, count = int(n), [0]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def counted(path_name, wanted):
    if wanted(path_name):
        count[0] += 1
        return count[0] == n
    return False


if kind == "rename":  # the n-th checkpoint's temporary file is complete, its rename not done
    real_replace = os.replace

    def replace(src, dst):
        if counted(os.path.basename(str(dst)), lambda name: name.endswith(".pt")):
            die()
        real_replace(src, dst)

    atomic.os.replace = replace
elif kind == "snapshot":  # latest.pt of an epoch end written, the n-th epoch snapshot not begun
    real_write = checkpoint_file.atomic_write_bytes

    def write(path, data):
        if counted(os.path.basename(str(path)), lambda name: name.startswith("epoch_")):
            die()
        return real_write(path, data)

    checkpoint_file.atomic_write_bytes = write
elif kind == "step":  # inside the n-th training step of this process
    real_step = trainer.Trainer.train_step

    def step(self, batch):
        if counted("", lambda name: True):
            die()
        return real_step(self, batch)

    trainer.Trainer.train_step = step

from synth.commands.train import main

sys.exit(main(sys.argv[1:]))
"""


def _flags(root: Path, checkpoints: Path) -> list[str]:
    """4 epochs of 4 iterations, latest.pt every 3 iterations and at each epoch end, a snapshot every epoch."""
    return tiny_flags(root, checkpoints) + [
        "--niter",
        "3",
        "--niter_decay",
        "1",
        "--save_latest_freq",
        "6",
        "--save_epoch_freq",
        "1",
        "--print_freq",
        "4",
    ]


def _run(driver: Path, flags: list[str], fault: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), FAULT_POINT=fault, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, str(driver), *flags], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _assert_same_nets(a: dict, b: dict, what: str) -> None:
    assert a["progress"] == b["progress"], what
    for net, state in a["nets"].items():
        for key, value in state.items():
            torch.testing.assert_close(b["nets"][net][key], value, rtol=0, atol=1e-6, msg=f"{what}: {net}.{key}")


def test_killed_runs_resume_to_the_uninterrupted_result(demo_root, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    straight = _run(driver, _flags(demo_root, tmp_path / "straight"), "none:0", tmp_path)
    assert straight.returncode == 0, straight.stderr[-2000:]

    rng = random.Random(17)
    faults = [
        f"rename:{rng.randint(1, 3)}",
        "snapshot:1",
        f"step:{rng.randint(2, 5)}",
        f"rename:{rng.randint(1, 3)}",
        f"step:{rng.randint(2, 5)}",
        "snapshot:1",
    ]
    rng.shuffle(faults)
    flags = _flags(demo_root, tmp_path / "killed")
    run = tmp_path / "killed" / "tiny"
    for fault in faults:
        resume = ["--continue_train"] if (run / "latest.pt").exists() else []
        result = _run(driver, flags + resume, fault, tmp_path)
        assert result.returncode == -signal.SIGKILL, (fault, result.returncode, result.stderr[-2000:])
        if fault.startswith("rename"):  # a complete temporary file, never renamed
            assert list(run.glob(".*.pt.*.tmp")), fault
        if fault.startswith("snapshot"):  # latest.pt at an epoch end, that epoch's snapshot missing
            progress = load_checkpoint(run / "latest.pt")["progress"]
            assert progress["epoch_iter"] == 0 and not (run / f"epoch_{progress['epoch'] - 1:03d}.pt").exists()
    final = _run(driver, flags + ["--continue_train"], "none:0", tmp_path)
    assert final.returncode == 0, final.stderr[-2000:]

    assert not [p.name for p in run.rglob("*.tmp")]
    assert sorted(p.name for p in run.glob("*.pt")) == [*SNAPSHOTS, "latest.pt"]
    for name in ("latest.pt", *SNAPSHOTS):
        _assert_same_nets(load_checkpoint(tmp_path / "straight" / "tiny" / name), load_checkpoint(run / name), name)
