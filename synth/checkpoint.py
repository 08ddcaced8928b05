"""A run's checkpoints: where they live, the architecture checks when one is loaded, strict network loads and the
RNG state. The file format itself (atomic write, weights_only read) is ``synth.core.checkpoint_file``.

Layout of the dict: ``format``, ``options`` (all flags, plain types), ``nets`` (state dicts by name),
``optimizers``, ``scalers``, ``progress`` (epoch, epoch_iter, total_iters, total_images) and ``rng``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synth.core.checkpoint_file import FORMAT, load_checkpoint, save_checkpoint  # noqa: F401  (re-exported)
from synth.core.errors import CheckpointError, OptionError
from synth.options.flags import ARCHITECTURE_KEYS


def run_dir(opt: argparse.Namespace) -> Path:
    """``checkpoints_dir/name``: where a run keeps its checkpoints, opt.yaml and web page."""
    return Path(opt.checkpoints_dir) / opt.name


def checkpoint_path(opt: argparse.Namespace, which_epoch: str | int | None = None) -> Path:
    """File of ``which_epoch`` ('latest' or an epoch number) in the run folder."""
    which = str(which_epoch if which_epoch is not None else opt.which_epoch)
    return run_dir(opt) / ("latest.pt" if which == "latest" else f"epoch_{int(which):03d}.pt")


def run_checkpoints(folder: Path) -> list[Path]:
    """The checkpoints in a run folder: ``latest.pt`` first, then ``epoch_NNN.pt`` in order."""
    return [p for p in [folder / "latest.pt", *sorted(folder.glob("epoch_*.pt"))] if p.is_file()]


def check_fresh_run(opt: argparse.Namespace) -> None:
    """A fresh run into a folder that holds checkpoints needs --continue_train or --overwrite (OptionError)."""
    if getattr(opt, "continue_train", False) or getattr(opt, "overwrite", False):
        return
    found = run_checkpoints(run_dir(opt))
    if found:
        raise OptionError(
            f"{found[0]}: run '{opt.name}' already has checkpoints; pass --continue_train to resume it or "
            f"--overwrite to start over (its checkpoints are deleted)")


def clear_for_fresh_run(opt: argparse.Namespace) -> None:
    """With --overwrite on a fresh run: delete the old run's checkpoints, so no snapshot of it is mistaken for
    one of the new run."""
    if getattr(opt, "overwrite", False) and not getattr(opt, "continue_train", False):
        for path in run_checkpoints(run_dir(opt)):
            path.unlink(missing_ok=True)


def merge_architecture(opt: argparse.Namespace, saved: dict[str, Any], path: Path) -> None:
    """Take the architecture flags from the checkpoint (pix2pixHD's and the model's own ``architecture_keys``);
    a flag the user typed that contradicts it is an error."""
    from synth.models.registry import MODELS

    model_keys = tuple(getattr(MODELS.get(saved.get("model", opt.model)), "architecture_keys", ()))
    for key in ARCHITECTURE_KEYS + model_keys:
        if key not in saved:
            continue
        if key in getattr(opt, "explicit", ()) and getattr(opt, key) != saved[key]:
            raise OptionError(
                f"{path}: was trained with --{key} {saved[key]}, but --{key} {getattr(opt, key)} was given; "
                f"drop the flag (architecture flags come from the checkpoint)"
            )
        setattr(opt, key, saved[key])


def load_net_state(net: nn.Module, state: dict[str, torch.Tensor], name: str, path: Path) -> None:
    """Strict load; a state dict of another architecture gives one line naming the first mismatch."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        what = f"missing '{missing[0]}'" if missing else f"unexpected '{unexpected[0]}'"
        raise CheckpointError(f"{path}: network {name} is of another architecture ({what})")
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise CheckpointError(
                f"{path}: network {name} is of another architecture "
                f"('{key}' is {tuple(value.shape)} there, {tuple(own[key].shape)} here)"
            )
    net.load_state_dict(state, strict=True)


def rng_state() -> dict[str, Any]:
    """Torch's CPU (and CUDA) generator states; data randomness is derived from (seed, epoch, index) instead."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
