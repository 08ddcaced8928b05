"""A non-finite loss stops training with one line naming the iteration and the term, and no checkpoint is written
after it; interrupted saves' temporary files are removed when a run starts; a skipped epoch snapshot is written."""

import pytest
import torch

from synth.commands.train import main as train_main
from synth.core.atomic import atomic_write_bytes, remove_stale_temporaries
from synth.models.pix2pixhd_model import Pix2PixHDModel
from synth.options import parse_train_options
from synth.trainer import LossGuard, NonFiniteError, Trainer
from tests.conftest import tiny_flags


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.glob("*.pt")}


def _nan_at(monkeypatch, call: int, term: str = "G_GAN") -> None:
    """Make pix2pixHD's ``term`` NaN in the ``call``-th step of this process."""
    real = Pix2PixHDModel.compute_losses
    calls = []

    def compute_losses(self, batch):
        out = real(self, batch)
        calls.append(1)
        if len(calls) == call:
            losses = out.g_losses if term in out.g_losses else out.d_losses
            losses[term] = losses[term] * float("nan")
        return out

    monkeypatch.setattr(Pix2PixHDModel, "compute_losses", compute_losses)


@pytest.mark.parametrize(
    ("save_every", "term"),
    [("2", "G_GAN"), ("1000", "D_real")],  # a save due right after the NaN step / only the print-time check
)
def test_nan_loss_stops_with_one_line_and_leaves_the_checkpoints(
    demo_root, tmp_path, monkeypatch, capsys, save_every, term
):
    flags = tiny_flags(demo_root, tmp_path)
    assert train_main(flags + ["--max_iters", "2"]) == 0
    before = _files(tmp_path / "tiny")
    _nan_at(monkeypatch, 1, term)  # the first step after resuming: iteration 3; printing is at iteration 4
    capsys.readouterr()
    assert train_main(flags + ["--continue_train", "--save_latest_freq", save_every]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: iteration 3 (epoch 1): loss term {term} is nan; training stopped, the checkpoints "
        f"were left as they were"
    ]
    assert _files(tmp_path / "tiny") == before  # latest.pt byte-identical, no snapshot written


def test_guard_reads_nothing_back_while_observing(monkeypatch):
    guard = LossGuard()
    finite = {"G_GAN": torch.tensor(1.0), "D_real": torch.tensor(2.0)}
    for name in ("item", "tolist", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, lambda *a, _n=name: pytest.fail(f"host sync: {_n}"))
    for iteration in range(1, 4):
        guard.observe(finite, iteration)
    guard.observe({"G_GAN": torch.tensor(float("inf")), "D_real": torch.tensor(float("nan"))}, 4)
    guard.observe({"G_GAN": torch.tensor(float("nan")), "D_real": torch.tensor(1.0)}, 5)
    monkeypatch.undo()
    with pytest.raises(NonFiniteError, match=r"^iteration 4 \(epoch 2\): loss term G_GAN is inf;"):
        guard.check(epoch=2)


def test_a_save_refuses_non_finite_weights(demo_root, tmp_path):
    trainer = Trainer(parse_train_options(tiny_flags(demo_root, tmp_path)))
    with torch.no_grad():
        next(trainer.model.netD.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(NonFiniteError, match="iteration 0 .*weights of network D are not finite"):
        trainer.save("latest")
    assert not (tmp_path / "tiny" / "latest.pt").exists()


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    atomic_write_bytes(tmp_path / "latest.pt", b"good")
    stale = [tmp_path / ".latest.pt.ab_3x9q1.tmp", tmp_path / "web" / ".index.html.zzzzzzzz.tmp"]
    kept = [tmp_path / "notes.tmp", tmp_path / ".hidden", tmp_path / ".latest.pt.short.tmp"]
    for p in stale + kept:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == sorted(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert (tmp_path / "latest.pt").read_bytes() == b"good"


def test_a_run_start_removes_them_and_never_reads_them(demo_root, tmp_path, capsys):
    flags = tiny_flags(demo_root, tmp_path)
    assert train_main(flags + ["--max_iters", "2"]) == 0
    run = tmp_path / "tiny"
    stale = run / ".latest.pt.k1ll3d00.tmp"
    stale.write_bytes(b"half a checkpoint")  # what a kill between write and rename leaves
    capsys.readouterr()
    assert train_main(flags + ["--continue_train", "--max_iters", "3"]) == 0
    assert "removed 1 temporary file(s) that interrupted saves left" in capsys.readouterr().out
    assert not stale.exists() and not list(run.rglob("*.tmp"))


def test_a_skipped_epoch_snapshot_is_written_on_resume(demo_root, tmp_path, capsys):
    flags = tiny_flags(demo_root, tmp_path)
    assert train_main(flags) == 0  # 2 epochs: latest.pt (epoch 3, iteration 0) and epoch_002.pt
    run = tmp_path / "tiny"
    snapshot = torch.load(run / "epoch_002.pt", weights_only=True)
    latest = (run / "latest.pt").read_bytes()
    (run / "epoch_002.pt").unlink()  # as if killed between latest.pt and epoch_002.pt
    capsys.readouterr()
    assert train_main(flags + ["--continue_train"]) == 0
    assert "epoch_002.pt, the epoch snapshot an interrupted save had skipped" in capsys.readouterr().out
    restored = torch.load(run / "epoch_002.pt", weights_only=True)
    assert restored["progress"] == snapshot["progress"]
    for net, state in snapshot["nets"].items():
        assert all(torch.equal(value, restored["nets"][net][key]) for key, value in state.items())
    assert (run / "latest.pt").read_bytes() == latest  # nothing left to train: latest.pt untouched
