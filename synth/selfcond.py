"""Self-conditioned editing of per-instance attributes (Self-Conditioned GANs, Liu et al. 2022), end to end:

1. ``direction``: a boundary in a ``--model modulated`` run's code space, from a CSV of labelled instances
   (linear SVM or logistic regression) or, without labels, from two K-means centroids;
2. ``label``: every training instance's pseudo-label along one or more directions (``synth.attributes``);
3. fine-tuning: ``synth-train --model selfcond --sc_pretrained RUN --sc_labels FILE`` (``models/selfcond_model.py``);
4. ``sweep``: one instance's attribute label swept from 0 to 1, saved as a strip.

An instance's code is its per-layer codes concatenated in layer order. With a self-conditioned model an edit to
label ``t`` sets the instance's condition to ``t`` and keeps its code (SC-GAN's edit; ``move_code`` also moves the
code along the direction); the baseline, an un-fine-tuned model, can only move the code to the distance of ``t``.
Objects are the instances with ids >= 1000 (pix2pixHD's and Cityscapes' convention); only they get labels.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from synth import ghfeat as gf
from synth.atomic import atomic_write_bytes
from synth.attributes import Direction, PseudoLabels, centroid_direction, fit_direction, flip_direction, pseudo_labels
from synth.errors import DataError, OptionError

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
    import io

    buffer = io.BytesIO()
    np.savez(buffer, normal=direction.normal, intercept=np.array(direction.intercept))
    return atomic_write_bytes(Path(path), buffer.getvalue())


def load_direction(path: str | Path) -> Direction:
    try:
        with np.load(path, allow_pickle=False) as data:
            return Direction(data["normal"].astype(np.float64), float(data["intercept"]))
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a direction file ({exc})") from None


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


# ----- command line --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """``synth-selfcond {direction,label,sweep} --name RUN ...`` (see docs/selfcond.md)."""
    from synth.cli import run_cli

    parser = argparse.ArgumentParser(prog="synth-selfcond", add_help=False)
    parser.add_argument("command", choices=("direction", "label", "sweep"))
    parser.add_argument("--labelled", default=None, help="direction: CSV key,instance,value of labelled objects")
    parser.add_argument("--method", default="svm", choices=("svm", "logreg", "kmeans"),
                        help="direction: linear SVM, logistic regression, or K-means centroids (no labels)")
    parser.add_argument("--flip", action="store_true", help="direction: swap the positive and negative sides")
    parser.add_argument("--direction", action="append", default=[],
                        help="label: NAME=FILE of a direction (repeat for several attributes)")
    parser.add_argument("--out", default=None, help="output file (direction, label) or folder (sweep)")
    parser.add_argument("--image", default=None, help="sweep: sample key")
    parser.add_argument("--instance", type=int, default=None, help="sweep: instance id to edit")
    parser.add_argument("--attribute", default=None, help="sweep: attribute name (default the first)")
    parser.add_argument("--steps", type=int, default=5, help="sweep: label values from 0 to 1")
    parser.add_argument("--move_code", action="store_true",
                        help="sweep: also move the code along the direction (default: the condition alone)")
    parser.add_argument("--baseline_labels", default=None,
                        help="sweep with an un-fine-tuned --model modulated run: its pseudo-label file")
    parser.add_argument("--min_area_fraction", type=float, default=gf.DEFAULT_MIN_AREA_FRACTION)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        from synth.checkpoint import run_dir

        model, opt = gf.load_run(rest, "encode_codes", "instance-code (--model modulated or selfcond)")
        if args.command in ("direction", "label"):
            loader = DataLoader(gf._dataset(opt, "train"), batch_size=opt.batchSize, num_workers=opt.nThreads)
            objects = collect_object_codes(model, loader, args.min_area_fraction)
        if args.command == "direction":
            if args.method == "kmeans":
                direction = centroid_direction(objects.codes, opt.seed)
            else:
                if not args.labelled:
                    raise OptionError("direction needs --labelled CSV (or --method kmeans)")
                labelled = read_labelled(args.labelled)
                rows = objects.rows_of(list(labelled))
                direction = fit_direction(objects.codes[rows], np.array(list(labelled.values())), args.method,
                                          opt.seed)
            direction = flip_direction(direction) if args.flip else direction
            path = save_direction(args.out or run_dir(opt) / "direction.npz", direction)
            print(f"wrote {path} ({objects.codes.shape[1]}-dimensional codes)")
        elif args.command == "label":
            if not args.direction or any("=" not in d for d in args.direction):
                raise OptionError("label needs --direction NAME=FILE (one per attribute)")
            names = [d.split("=", 1)[0] for d in args.direction]
            directions = [load_direction(d.split("=", 1)[1]) for d in args.direction]
            labels = pseudo_labels(names, directions, objects.codes, objects.keys, objects.ids)
            path = labels.save(args.out or run_dir(opt) / "pseudo_labels.npz")
            print(f"wrote {path} ({len(labels.ids)} objects, attributes: {', '.join(names)})")
        else:
            if args.image is None or args.instance is None:
                raise OptionError("sweep needs --image KEY and --instance ID")
            baseline = PseudoLabels.load(args.baseline_labels) if args.baseline_labels else None
            if baseline is None and not hasattr(model, "condition"):
                raise OptionError(f"{opt.name}: sweeping an un-fine-tuned run needs --baseline_labels FILE")
            batch = gf._sample(gf._dataset(opt, opt.phase), args.image)
            images = sweep(model, batch, args.instance, args.steps, args.attribute, baseline, args.move_code).images
            out_dir = Path(args.out) if args.out else Path(opt.results_dir) / opt.name / "selfcond"
            path = save_strip(out_dir / f"{args.image}_{args.instance}_sweep.png", batch["image"][0], images)
            print(f"wrote {path}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
