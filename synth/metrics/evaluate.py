"""The evaluation pipeline (``synth-eval``): FID / KID of synthesized images against real ones, and mIoU / pixel
accuracy of a segmentation network run on the synthesized images, in the papers' table format.

Protocol (pix2pixHD / SPADE / OASIS / ECGAN): everything is evaluated at the generated resolution; ground-truth
label maps are mapped to evaluation ids (Cityscapes labelIds -> 19 trainIds, ADE20K 1..150 -> 0..149, void = 255)
and downsampled nearest-neighbour to that resolution; FID uses the whole real split resized bicubic to the generated
size (or precomputed ``.npz`` statistics). Results go to JSON and CSV; ``--runs`` puts several runs in one table.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from synth.core.atomic import atomic_write_text
from synth.core.errors import DataError, OptionError
from synth.data.io import image_size
from synth.metrics import fid as fidlib
from synth.metrics.segmentation import (
    DATASET_CLASSES,
    IGNORE_INDEX,
    VOID_MODES,
    ConfusionMatrix,
    to_train_ids,
)
from synth.options.validate import COMMAND_RANGES, check_ranges

SYNTH_SUFFIX = "_synthesized_image"
REAL_SUFFIX = "_real_image"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
#: the segmenter of each dataset's published protocol
DEFAULT_SEGMENTER = {"cityscapes": "drn_d_105", "ade20k": "upernet101"}
CSV_FIELDS = ("method", "dataset", "num_images", "height", "width", "mIoU", "Acc", "FID", "KID", "KID_std",
              "seg_model", "acc_void", "fid_dims", "fid_real", "results_dir")


# ----------------------------------------------------------------------------------------------- finding files


def _image_files(folder: Path, recursive: bool = False) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


def _images_dir(results_dir: Path) -> Path:
    if not results_dir.is_dir():
        raise DataError(f"{results_dir}: results folder not found")
    return results_dir / "images" if (results_dir / "images").is_dir() else results_dir


def find_synthesized(results_dir: str | Path) -> dict[str, Path]:
    """``{key: file}`` of ``{key}_synthesized_image.*`` in ``results_dir/images`` (or ``results_dir``)."""
    folder = _images_dir(Path(results_dir))
    found = {p.stem[: -len(SYNTH_SUFFIX)]: p for p in _image_files(folder) if p.stem.endswith(SYNTH_SUFFIX)}
    if not found:
        raise DataError(f"{folder}: no *{SYNTH_SUFFIX}.png files (run synth-test first, or pass --synthesize)")
    return found


def find_real_in_results(results_dir: str | Path) -> list[Path]:
    """The ``{key}_real_image.*`` files written by ``synth-test`` next to the synthesized ones."""
    folder = _images_dir(Path(results_dir))
    return [p for p in _image_files(folder) if p.stem.endswith(REAL_SUFFIX)]


def _dataset_root(dataset: str, dataroot: Path) -> Path:
    if dataset == "ade20k" and (dataroot / "ADEChallengeData2016").is_dir():
        return dataroot / "ADEChallengeData2016"
    return dataroot


def default_label_dir(dataset: str, dataroot: str | Path, phase: str) -> Path:
    """Ground-truth folder of a split: ``gtFine/PHASE`` (Cityscapes) or ``annotations/validation`` (ADE20K)."""
    root = _dataset_root(dataset, Path(dataroot))
    if dataset == "cityscapes":
        return root / "gtFine" / phase
    if dataset == "ade20k":
        return root / "annotations" / ("training" if phase == "train" else "validation")
    return root


def default_real_dir(dataset: str, dataroot: str | Path, phase: str) -> Path:
    """Photo folder of a split: ``leftImg8bit/PHASE`` (Cityscapes) or ``images/validation`` (ADE20K)."""
    root = _dataset_root(dataset, Path(dataroot))
    if dataset == "cityscapes":
        return root / "leftImg8bit" / phase
    if dataset == "ade20k":
        return root / "images" / ("training" if phase == "train" else "validation")
    return root


def find_labels(dataset: str, label_dir: str | Path) -> dict[str, Path]:
    """``{key: label file}`` under ``label_dir`` (recursive), keyed like the datasets pair files (Cityscapes'
    ``_gtFine_labelIds`` suffix removed); for Cityscapes only ``*_gtFine_labelIds`` files are taken."""
    from synth.data.datasets.base import sample_key

    folder = Path(label_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: ground-truth label folder not found (pass --dataroot or --label_dir)")
    files = _image_files(folder, recursive=True)
    if dataset == "cityscapes":
        files = [p for p in files if p.stem.endswith("_gtFine_labelIds")]
    if not files:
        raise DataError(f"{folder}: no label maps found")
    return {sample_key(p): p for p in files}


# ----------------------------------------------------------------------------------------------- FID / KID


def compute_fid(
    fake_files: Sequence[Path],
    *,
    real_files: Sequence[Path] | None = None,
    real_stats: str | Path | None = None,
    save_real_stats: str | Path | None = None,
    fid_weights: str | None = None,
    dims: int = 2048,
    kid: bool = True,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    batch_size: int = 16,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """FID (and KID when real features are at hand) of ``fake_files`` against real images or saved statistics.

    Real images are resized bicubic to the size of the first synthesized image. Returns ``FID``, ``KID``,
    ``KID_std`` (None when unavailable), ``kid_subset_size`` and the counts.
    """
    size = image_size(fake_files[0])  # (W, H)
    real_feats = None
    if real_stats is not None:  # read (and checked) before any feature is computed
        mu_r, sigma_r, real_feats = fidlib.load_statistics(real_stats)
        if len(mu_r) != dims:
            raise DataError(f"{real_stats}: statistics of {len(mu_r)}-d features, but --fid_dims is {dims}; pass "
                            f"--fid_dims {len(mu_r)} or statistics made with this one")
        n_real = int(real_feats.shape[0]) if real_feats is not None else None
    elif not real_files:
        raise DataError("no real images for FID: pass --real_dir, --real_stats or --dataroot, or --no_fid")
    model = fidlib.build_inception(fid_weights, dims, device)
    common = dict(model=model, batch_size=batch_size, num_workers=num_workers, device=device, progress=progress)
    fake_feats = fidlib.image_features(fake_files, size=None, desc="FID features (synthesized)", **common)
    if real_stats is None:
        real_feats = fidlib.image_features(real_files, size=size, desc="FID features (real)", **common)
        mu_r, sigma_r = fidlib.feature_statistics(real_feats)
        n_real = len(real_files)
        if save_real_stats is not None:
            fidlib.save_statistics(save_real_stats, real_feats, width=size[0], height=size[1], dims=dims)
    mu_f, sigma_f = fidlib.feature_statistics(fake_feats)
    out: dict[str, Any] = {"FID": fidlib.frechet_distance(mu_f, sigma_f, mu_r, sigma_r), "KID": None,
                           "KID_std": None, "kid_subset_size": None, "fid_fake_count": len(fake_files),
                           "fid_real_count": n_real}
    if kid and real_feats is not None:
        mean, std, m = fidlib.kernel_inception_distance(real_feats, fake_feats, subsets=kid_subsets,
                                                        subset_size=kid_subset_size, progress=progress)
        out.update(KID=mean, KID_std=std, kid_subset_size=m)
    return out


# ----------------------------------------------------------------------------------------------- segmentation


class _SegPairs(Dataset):
    """(synthesized image in [0,1], evaluation-id label resized nearest to the image size, key)."""

    def __init__(self, keys: list[str], images: dict[str, Path], labels: dict[str, Path], dataset: str) -> None:
        self.keys, self.images, self.labels, self.dataset = keys, images, labels, dataset

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        key = self.keys[i]
        img_path, label_path = self.images[key], self.labels[key]
        try:
            with Image.open(img_path) as img:
                rgb = np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
        except OSError as exc:
            raise DataError(f"{img_path}: cannot read image ({exc})") from None
        try:
            with Image.open(label_path) as lab:
                raw = np.asarray(lab)
        except OSError as exc:
            raise DataError(f"{label_path}: cannot read label map ({exc})") from None
        if raw.ndim != 2:
            raise DataError(f"{label_path}: label map must have one channel of ids, found shape {raw.shape}")
        ids = to_train_ids(self.dataset, raw)
        h, w = rgb.shape[:2]
        if ids.shape != (h, w):
            ids = np.asarray(Image.fromarray(ids).resize((w, h), Image.NEAREST))
        image = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)
        return image, torch.from_numpy(ids.astype(np.int64)), key


def _as_list(batch: list) -> list:
    return batch


def compute_segmentation(
    images: dict[str, Path],
    labels: dict[str, Path],
    *,
    dataset: str,
    segmenter: torch.nn.Module,
    num_classes: int,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> ConfusionMatrix:
    """Segment every synthesized image in batches and accumulate the confusion matrix against its label map."""
    missing = [k for k in images if k not in labels]
    if missing:
        raise DataError(f"synthesized image '{missing[0]}' has no ground-truth label map "
                        f"({len(missing)} without one; check --dataroot / --phase / --label_dir)")
    keys = sorted(images)
    loader = DataLoader(_SegPairs(keys, images, labels, dataset), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=_as_list)
    cm = ConfusionMatrix(num_classes, IGNORE_INDEX)
    with torch.inference_mode(), tqdm(total=len(keys), desc="segmenting", unit="img", disable=not progress) as bar:
        for batch in loader:
            groups: dict[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}
            for image, label, _ in batch:
                groups.setdefault(tuple(image.shape[-2:]), []).append((image, label))
            for items in groups.values():
                x = torch.stack([im for im, _ in items]).to(device)
                pred = segmenter(x).argmax(dim=1).cpu()
                cm.update(pred, torch.stack([lab for _, lab in items]))
            bar.update(len(batch))
    return cm


def class_names(dataset: str, num_classes: int) -> list[str]:
    """Cityscapes' trainId names from cityscapesScripts; class indices otherwise."""
    if dataset == "cityscapes":
        from cityscapesscripts.helpers.labels import trainId2label

        return [trainId2label[i].name for i in range(num_classes)]
    return [str(i) for i in range(num_classes)]


# ----------------------------------------------------------------------------------------------- tables


def _fmt(value: Any, scale: float = 1.0, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value * scale:.{digits}f}"


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """The papers' table: ``method | mIoU ↑ | Acc ↑ | FID ↓`` (mIoU/Acc in %, and KID x 10³ when any run has it)."""
    with_kid = any(r.get("KID") is not None for r in results)
    head = ["method", "mIoU ↑", "Acc ↑", "FID ↓"] + (["KID×10³ ↓"] if with_kid else [])
    rows = [head]
    for r in results:
        row = [str(r.get("method", "?")), _fmt(r.get("mIoU"), 100), _fmt(r.get("Acc"), 100), _fmt(r.get("FID"))]
        if with_kid:
            row.append(_fmt(r.get("KID"), 1000, 2))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _csv_text(results: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_FIELDS})
    return buf.getvalue()


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    return obj


def write_results(results: Sequence[dict[str, Any]], json_path: str | Path) -> tuple[Path, Path]:
    """Write ``{"runs": [...], "table": "..."}`` to ``json_path`` and one CSV row per run beside it (``.csv``)."""
    json_path = Path(json_path)
    csv_path = json_path.with_suffix(".csv")
    payload = {"runs": _json_safe(list(results)), "table": format_table(results)}
    atomic_write_text(json_path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(csv_path, _csv_text(results))
    return json_path, csv_path


def load_runs(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Results of earlier ``synth-eval`` runs (their JSON files), in order."""
    runs: list[dict[str, Any]] = []
    for p in paths:
        path = Path(p)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DataError(f"{path}: cannot read results ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        entries = data.get("runs") if isinstance(data, dict) and "runs" in data else [data]
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "method" in e for e in entries):
            raise DataError(f"{path}: not a synth-eval results file")
        runs.extend(entries)
    return runs


# ----------------------------------------------------------------------------------------------- pipeline


def resolve_device(device: str) -> str:
    """'auto' -> cuda when available, else cpu."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError(f"--device {device} asked for, but no CUDA device is available (use --device cpu)")
    return device


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the evaluation described by ``synth-eval``'s parsed flags; returns one result dict."""
    results_dir = Path(args.results_dir)
    images = find_synthesized(results_dir)
    files = [images[k] for k in sorted(images)]
    width, height = image_size(files[0])
    device = resolve_device(args.device)
    progress = not args.no_progress
    result: dict[str, Any] = {
        "method": args.method or results_dir.resolve().parent.name,
        "dataset": args.dataset, "num_images": len(files), "height": height, "width": width,
        "mIoU": None, "Acc": None, "FID": None, "KID": None, "KID_std": None,
        "seg_model": None, "acc_void": args.acc_void, "fid_dims": None, "fid_real": None,
        "results_dir": str(results_dir),
    }
    if not args.no_seg:
        num_classes = DATASET_CLASSES.get(args.dataset, args.num_classes)
        if not num_classes:
            raise OptionError("--dataset trainids needs --num_classes N")
        seg_model = args.seg_model or DEFAULT_SEGMENTER.get(args.dataset)
        if seg_model is None:
            raise OptionError("--dataset trainids needs --seg_model (e.g. torchscript)")
        label_dir = args.label_dir or (default_label_dir(args.dataset, args.dataroot, args.phase)
                                       if args.dataroot else None)
        if label_dir is None:
            raise OptionError("segmentation scores need the ground truth: pass --dataroot or --label_dir "
                              "(or --no_seg)")
        labels = find_labels(args.dataset, label_dir)
        from synth.metrics.segmenters import load_segmenter

        segmenter = load_segmenter(seg_model, args.seg_weights, num_classes, device)
        cm = compute_segmentation(images, labels, dataset=args.dataset, segmenter=segmenter,
                                  num_classes=num_classes, batch_size=args.batch_size,
                                  num_workers=args.num_workers, device=device, progress=progress)
        names = class_names(args.dataset, num_classes)
        result.update(mIoU=cm.mean_iou(), Acc=cm.pixel_accuracy(args.acc_void),
                      Acc_void_excluded=cm.pixel_accuracy("exclude"), Acc_void_included=cm.pixel_accuracy("include"),
                      seg_model=seg_model, per_class_iou=dict(zip(names, cm.iou().tolist(), strict=True)),
                      void_fraction=cm.void_pixels / max(1, cm.void_pixels + cm.valid_pixels))
        del segmenter
    if not args.no_fid:
        real_files = None
        if args.real_stats:
            source = f"stats:{args.real_stats}"
        else:
            real_dir = args.real_dir
            if real_dir is None and args.dataroot:
                candidate = default_real_dir(args.dataset, args.dataroot, args.phase)
                real_dir = candidate if candidate.is_dir() else None
            if real_dir is not None:
                if not Path(real_dir).is_dir():
                    raise DataError(f"{real_dir}: real image folder not found")
                real_files = _image_files(Path(real_dir), recursive=True)
                source = f"dir:{real_dir}"
            else:
                real_files = find_real_in_results(results_dir)
                source = "results:real_image"
        fid = compute_fid(files, real_files=real_files, real_stats=args.real_stats,
                          save_real_stats=args.save_real_stats, fid_weights=args.fid_weights, dims=args.fid_dims,
                          kid=not args.no_kid, kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
                          batch_size=args.batch_size, num_workers=args.num_workers, device=device,
                          progress=progress)
        result.update(fid, fid_dims=args.fid_dims, fid_real=source)
    return result


# ----------------------------------------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise OptionError(message)


def build_parser() -> argparse.ArgumentParser:
    """``synth-eval``'s flags."""
    p = _Parser(prog="synth-eval", description="FID / KID / mIoU / Acc of synthesized images (papers' protocol). "
                "Flags after '--' go to synth-test when --synthesize is given.")
    p.add_argument("--results_dir", help="results/NAME/PHASE_EPOCH written by synth-test (its images/ folder)")
    p.add_argument("--synthesize", action="store_true",
                   help="first run synth-test with the flags after '--' (whole split unless --how_many is given)")
    p.add_argument("--runs", nargs="+", metavar="JSON", help="only merge earlier results files into one table")
    p.add_argument("--dataset", choices=("cityscapes", "ade20k", "trainids"), default=None,
                   help="label conventions (default: the checkpoint's --dataset_mode with --synthesize)")
    p.add_argument("--num_classes", type=int, default=0, help="classes for --dataset trainids")
    p.add_argument("--dataroot", default=None, help="dataset root: ground truth and real photos of --phase")
    p.add_argument("--phase", default="val", help="split of --dataroot (default val)")
    p.add_argument("--label_dir", default=None, help="ground-truth label maps (overrides --dataroot's)")
    p.add_argument("--real_dir", default=None, help="real photos for FID (overrides --dataroot's)")
    p.add_argument("--real_stats", default=None, help=".npz with the real set's mu/sigma (and features for KID)")
    p.add_argument("--save_real_stats", default=None, help="write the real set's statistics to this .npz")
    p.add_argument("--seg_model", default=None,
                   help="drn_d_105 (Cityscapes default), upernet101 (ADE20K default), deeplabv3_resnet50|101, "
                        "torchscript")
    p.add_argument("--seg_weights", default=None, help="segmenter weights file (or folder for upernet101)")
    p.add_argument("--fid_weights", default=None,
                   help=f"path to {fidlib.FID_WEIGHTS_FILE} (default: torch hub checkpoints folder); "
                        "'random' = random weights, for tests only")
    p.add_argument("--fid_dims", type=int, default=2048, choices=fidlib.FID_DIMS,
                   help="Inception feature size; 2048 (pool3) is the published protocol")
    p.add_argument("--kid_subsets", type=int, default=100)
    p.add_argument("--kid_subset_size", type=int, default=1000)
    p.add_argument("--acc_void", choices=VOID_MODES, default="exclude",
                   help="pixel accuracy: exclude void pixels (default) or count them as wrong")
    p.add_argument("--no_fid", action="store_true", help="skip FID and KID")
    p.add_argument("--no_kid", action="store_true", help="skip KID")
    p.add_argument("--no_seg", action="store_true", help="skip mIoU and Acc")
    p.add_argument("--method", default=None, help="name in the table (default: the experiment folder name)")
    p.add_argument("--out", default=None, help="results JSON (CSV beside it); default RESULTS_DIR/eval.json")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--num_workers", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    return p


def _synthesize(args: argparse.Namespace, test_argv: list[str]) -> None:
    """Run synth-test's inference with ``test_argv`` and point ``args`` at its results."""
    from synth.inference import run_inference
    from synth.options import parse_test_options

    if not any(a == "--how_many" or a.startswith("--how_many=") for a in test_argv):
        test_argv = [*test_argv, "--how_many", "0"]
    opt = parse_test_options(test_argv)
    page = run_inference(opt)
    args.results_dir = str(Path(page).parent)
    if args.dataset is None and getattr(opt, "dataset_mode", None) in DATASET_CLASSES:
        args.dataset = opt.dataset_mode
    if args.dataroot is None and args.label_dir is None:
        args.dataroot = getattr(opt, "dataroot", None)
        args.phase = getattr(opt, "phase", args.phase)


def run(argv: Sequence[str]) -> list[dict[str, Any]]:
    """Parse ``argv``, evaluate (or merge ``--runs``), print the table, write JSON/CSV; returns the results."""
    argv = list(argv)
    test_argv: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, test_argv = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    check_ranges(args, COMMAND_RANGES)
    if args.runs:
        results = load_runs(args.runs)
    else:
        if test_argv and not args.synthesize:
            raise OptionError("flags after '--' are for synth-test and need --synthesize")
        if args.synthesize:
            _synthesize(args, test_argv)
        if not args.results_dir:
            raise OptionError("pass --results_dir (a synth-test results folder), --synthesize or --runs")
        if args.dataset is None:
            raise OptionError("pass --dataset cityscapes, ade20k or trainids")
        if args.batch_size < 1 or args.kid_subsets < 1 or args.kid_subset_size < 2:
            raise OptionError("--batch_size, --kid_subsets must be >= 1 and --kid_subset_size >= 2")
        results = [evaluate(args)]
    print(format_table(results))
    out = args.out or (None if args.runs else str(Path(args.results_dir) / "eval.json"))
    if out:
        json_path, csv_path = write_results(results, out)
        print(f"wrote {json_path} and {csv_path}")
    return results
