"""The checkpoint file format: one dict serialised with torch.save, written atomically, read with
``weights_only=True`` (tensors and plain types only, never arbitrary pickled objects).

A ground module: it imports nothing of synth's but the other ground modules.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from synth.core.atomic import atomic_write_bytes
from synth.core.errors import CheckpointError

FORMAT = "synth-checkpoint-v1"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Serialise ``state`` in memory, then write it atomically: an interrupted save never corrupts the old file."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a clear CheckpointError if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load fails on foreign bytes in many ways (IndexError, UnpicklingError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a synth checkpoint (no '{FORMAT}' marker)")
    for key in ("options", "nets"):
        if not isinstance(state.get(key), dict):
            raise CheckpointError(f"{path}: damaged checkpoint (no '{key}' mapping)")
    return state
