"""Self-conditioned editing of per-instance attributes (Self-Conditioned GANs, Liu et al. 2022), end to end:

1. ``direction``: a boundary in a ``--model modulated`` run's code space, from a CSV of labelled instances
   (linear SVM or logistic regression) or, without labels, from two K-means centroids;
2. ``label``: every training instance's pseudo-label along one or more directions (``synth.models.attributes``);
3. fine-tuning: ``synth-train --model selfcond --sc_pretrained RUN --sc_labels FILE`` (``models/selfcond_model.py``);
4. ``sweep``: one instance's attribute label swept from 0 to 1, saved as a strip.

An instance's code is its per-layer codes concatenated in layer order. With a self-conditioned model an edit to
label ``t`` sets the instance's condition to ``t`` and keeps its code (SC-GAN's edit; ``move_code`` also moves the
code along the direction); the baseline, an un-fine-tuned model, can only move the code to the distance of ``t``.
Objects are the instances with ids >= 1000 (pix2pixHD's and Cityscapes' convention); only they get labels.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from synth import ghfeat as gf
from synth.core.arrays_file import load_arrays, require_array, save_arrays
from synth.core.errors import DataError
from synth.models.attributes import (
    Direction,
    PseudoLabels,
)

OBJECT_ID_MIN = 1000


# ----- codes of instances ------------------------------------------------------------------------------------

def flat_codes(codes: list[torch.Tensor]) -> torch.Tensor:
    """Per-layer codes -> [N, D] (layers in order)."""
    return torch.cat([c.float() for c in codes], dim=1)


def split_codes(flat: torch.Tensor, num_codes: list[int]) -> list[torch.Tensor]:
    """[N, D] -> per-layer codes."""
    return list(flat.split(num_codes, dim=1))


@dataclass
class ObjectCodes:
    """Flat codes [M, D] of the objects of a split, with each row's image key and instance id."""

    codes: np.ndarray
    keys: list[str]
    ids: np.ndarray

    def rows_of(self, pairs: list[tuple[str, int]]) -> np.ndarray:
        """Rows of (key, instance id) pairs; DataError naming the first one that is not an object here."""
        where = {(k, int(i)): r for r, (k, i) in enumerate(zip(self.keys, self.ids, strict=True))}
        missing = [p for p in pairs if p not in where]
        if missing:
            raise DataError(f"instance {missing[0][1]} of '{missing[0][0]}' is not an object of this split "
                            f"(objects have ids >= {OBJECT_ID_MIN} and enough pixels)")
        return np.array([where[p] for p in pairs], np.int64)


@torch.no_grad()
def collect_object_codes(model, loader: DataLoader, min_area_fraction: float = gf.DEFAULT_MIN_AREA_FRACTION
                         ) -> ObjectCodes:
    """Encode every batch; keep the objects (ids >= 1000) larger than ``min_area_fraction`` of their image."""
    codes, keys, ids = [], [], []
    for batch in loader:
        enc = gf.encode(model, batch)
        rows = enc.index.index.reshape(-1)
        area = torch.zeros(enc.index.count, device=rows.device).index_add_(0, rows, torch.ones_like(rows,
                                                                                                   dtype=torch.float))
        keep = (area > min_area_fraction * enc.segments[0].numel()) & (enc.index.id_of() >= OBJECT_ID_MIN)
        keep = keep.cpu().numpy()
        codes.append(flat_codes(enc.codes).cpu().numpy()[keep])
        keys += [batch["key"][i] for i in enc.index.image_of().cpu().numpy()[keep]]
        ids.append(enc.index.id_of().cpu().numpy()[keep])
    return ObjectCodes(np.concatenate(codes), keys, np.concatenate(ids))


def read_labelled(path: str | Path) -> dict[tuple[str, int], float]:
    """A CSV with columns ``key,instance,value`` (a header row is allowed): the user's labelled instances."""
    out: dict[tuple[str, int], float] = {}
    try:
        with open(path, newline="") as f:
            for line, row in enumerate(csv.reader(f), 1):
                if not row or (line == 1 and row[0].strip().lower() == "key"):
                    continue
                if len(row) != 3:
                    raise DataError(f"{path}:{line}: expected key,instance,value, got {len(row)} fields")
                out[(row[0].strip(), int(row[1]))] = float(row[2])
    except OSError as exc:
        raise DataError(f"{path}: cannot read the labelled instances ({exc.strerror})") from None
    except ValueError as exc:
        raise DataError(f"{path}: instance must be an integer and value a number ({exc})") from None
    if not out:
        raise DataError(f"{path}: no labelled instances")
    return out


def save_direction(path: str | Path, direction: Direction) -> Path:
    """npz with ``normal`` [D] and ``intercept``, written atomically."""
    return save_arrays(Path(path), {"normal": direction.normal, "intercept": np.array(direction.intercept)})


def load_direction(path: str | Path) -> Direction:
    """A direction file (``save_direction``); DataError naming it when missing, damaged or malformed."""
    what = "direction file"
    data = load_arrays(path, what, ("normal", "intercept"), " (make it with synth-selfcond direction)")
    normal = require_array(path, what, "normal", data["normal"], 1)
    intercept = require_array(path, what, "intercept", data["intercept"], 0)
    if not len(normal) or not np.linalg.norm(normal) > 0:
        raise DataError(f"{path}: {what} has an empty or zero 'normal'")
    return Direction(normal.astype(np.float64), float(intercept))


# ----- edits ---------------------------------------------------------------------------------------------------

def object_labels(model, codes: torch.Tensor, index) -> torch.Tensor:
    """[N, A] labels of the instances from their codes (the pseudo-label rule); NaN for non-objects."""
    c = model.netC
    distances = codes.double() @ c.normals.T + c.intercepts
    labels = ((distances - c.lows) / (c.highs - c.lows)).clamp(0, 1).float()
    objects = (index.id_of() >= OBJECT_ID_MIN).unsqueeze(1)
    return torch.where(objects, labels, torch.full_like(labels, float("nan")))


@dataclass
class Sweep:
    """One object's sweep: ``images`` [steps, 3, H, W] at label ``targets``, the ``unedited`` render (its own
    code and label) and ``own_label``, the object's pseudo-label (edit size of step k: |targets[k] - own_label|)."""

    images: torch.Tensor
    targets: np.ndarray
    unedited: torch.Tensor
    own_label: float


@torch.no_grad()
def sweep(model, batch: dict, instance: int, steps: int = 5, attribute: str | None = None,
          baseline: PseudoLabels | None = None, move_code: bool = False) -> Sweep:
    """Image 0 of ``batch`` re-rendered with ``instance``'s attribute label at ``steps`` values from 0 to 1.

    With a self-conditioned ``model``: the condition set to the label (and, with ``move_code``, the code moved to
    the label's distance too). With ``baseline`` (the pseudo-labels, for an un-fine-tuned modulated ``model``):
    the code move alone."""
    batch = {k: v[:1] for k, v in batch.items()}
    enc = gf.encode(model, batch)
    row = gf.row_of(enc.index, 0, instance)
    conditional = baseline is None
    if conditional:
        column = model.attributes.index(attribute) if attribute else 0
        c = model.netC
        normal, intercept, low, high = c.normals[column], float(c.intercepts[column]), float(c.lows[column]), \
            float(c.highs[column])
    else:
        column = baseline.attribute_index(attribute) if attribute else 0
        normal = torch.as_tensor(baseline.normals[column])
        intercept, low, high = float(baseline.intercepts[column]), float(baseline.lows[column]), \
            float(baseline.highs[column])
    flat = flat_codes(enc.codes).double()
    normal = normal.to(flat.device, torch.float64)
    own = float(np.clip((float(flat[row] @ normal) + intercept - low) / (high - low), 0, 1))

    def render(t: float) -> torch.Tensor:
        moved = flat.clone()
        if move_code or not conditional:
            moved[row] += (low + t * (high - low) - (flat[row] @ normal + intercept)) * normal
        codes = split_codes(moved.float(), model.netG.num_codes)
        if conditional:
            labels = object_labels(model, moved, enc.index)
            labels[row, column] = float(t)
            codes = model.condition(codes, labels)
        return model.synthesize(enc.semantics, enc.segments, codes)[0]

    targets = np.linspace(0.0, 1.0, steps)
    return Sweep(torch.stack([render(float(t)) for t in targets]), targets, render(own), own)


def save_strip(path: str | Path, original: torch.Tensor, images: torch.Tensor) -> Path:
    """The original image followed by the sweep, side by side, as one PNG."""
    from synth.visualize import save_png, tensor_to_image

    return save_png(path, np.concatenate([tensor_to_image(x) for x in [original, *images]], axis=1))
