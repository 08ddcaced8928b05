"""Building a registered model with the files it needs: the model names them (``needed_files``), this module reads
them and hands them in, so models never open files and the layers point one way."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synth.checkpoint import load_checkpoint
from synth.core.errors import OptionError
from synth.models.attributes import PseudoLabels
from synth.models.base_model import LayoutModel, NeededFile, SuppliedFile
from synth.models.registry import MODELS


def read_run_checkpoint(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """A checkpoint file, or a run folder's ``latest.pt``: (the file read, its state)."""
    path = Path(path)
    path = path / "latest.pt" if path.is_dir() else path
    return path, load_checkpoint(path)


def _read_pseudo_labels(path: str | Path) -> tuple[Path, PseudoLabels]:
    return Path(path), PseudoLabels.load(path)


#: How each kind of needed file is read: kind -> path -> (file actually read, content).
FILE_READERS: dict[str, Callable[[str], tuple[Path, Any]]] = {
    "checkpoint": read_run_checkpoint,
    "pseudo_labels": _read_pseudo_labels,
}


def supply(need: NeededFile) -> SuppliedFile:
    """Read one needed file with the reader of its kind."""
    if need.kind not in FILE_READERS:
        raise OptionError(f"{need.flag}: no reader for files of kind '{need.kind}'")
    path, content = FILE_READERS[need.kind](need.path)
    return SuppliedFile(path, need.flag, content)


def build_model(opt: argparse.Namespace, for_training: bool) -> LayoutModel:
    """The model ``--model`` names, constructed with the files it needs already read."""
    cls = MODELS.get(opt.model)
    supplied = {name: supply(need) for name, need in cls.needed_files(opt, for_training).items()}
    return cls(opt, for_training=for_training, **supplied)
