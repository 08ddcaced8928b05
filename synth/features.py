"""Texture control (pix2pixHD §3.4): per-instance features from the encoder, per-class K-means over the training
set, and feature maps sampled from the clusters at test time.

Cluster file (``checkpoints/NAME/features_clustered_NNN.npz``, NumPy's npz, read with ``allow_pickle=False``):
``feat_num`` (scalar), ``classes`` (class ids that have clusters) and ``centers_<class>`` ([k, feat_num] float32,
k <= n_clusters) for each of them.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch.utils.data import DataLoader
from tqdm import tqdm

from synth.checkpoint import run_dir
from synth.core.arrays_file import load_arrays, require_array, save_arrays
from synth.core.errors import DataError, OptionError
from synth.data import create_dataset, one_hot
from synth.models.networks.instance_pool import segment_sums
from synth.models.pix2pixhd_model import Pix2PixHDModel, generator_size_multiple

#: pix2pixHD clusters only instances larger than 1/64 of the image (its ``num > h*w/32 * 0.5`` rule).
DEFAULT_MIN_AREA_FRACTION = 1 / 64


@dataclass
class FeatureClusters:
    """Per-class K-means centres of instance features."""

    feat_num: int
    centers: dict[int, np.ndarray]

    def save(self, path: str | Path) -> Path:
        """Write the npz atomically."""
        arrays = {"feat_num": np.array(self.feat_num), "classes": np.array(sorted(self.centers), dtype=np.int64)}
        arrays |= {f"centers_{c}": v.astype(np.float32) for c, v in self.centers.items()}
        return save_arrays(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> FeatureClusters:
        """Read a cluster file; a missing, empty, truncated or inconsistent file is one DataError line naming it."""
        what = "feature cluster file"
        data = load_arrays(path, what, ("feat_num", "classes"), " (make it with synth-encode-features)")
        feat_num, classes = data["feat_num"], data["classes"]
        if feat_num.shape != () or not np.issubdtype(feat_num.dtype, np.integer) or int(feat_num) < 1:
            raise DataError(f"{path}: {what} has feat_num {feat_num.tolist()!r}, expected one integer >= 1")
        classes = require_array(path, what, "classes", classes, 1)
        if not np.issubdtype(classes.dtype, np.integer) or (classes < 0).any():
            raise DataError(f"{path}: {what} array 'classes' must hold class ids (integers >= 0)")
        centers = {}
        for c in (int(c) for c in classes):
            key = f"centers_{c}"
            if key not in data:
                raise DataError(f"{path}: {what} lists class {c} but has no array '{key}'")
            values = require_array(path, what, key, data[key], 2)
            if values.shape[0] < 1 or values.shape[1] != int(feat_num):
                raise DataError(f"{path}: {what} array '{key}' has shape {values.shape}, expected [k >= 1, "
                                f"{int(feat_num)}] (feat_num)")
            centers[c] = values.astype(np.float32)
        if not centers:
            raise DataError(f"{path}: {what} holds no clusters (no class had instances when it was made)")
        return cls(int(feat_num), centers)

    def check_fits(self, path: str | Path, feat_num: int, label_nc: int) -> None:
        """DataError unless the clusters were made for a model with these ``feat_num`` and ``label_nc``."""
        if self.feat_num != feat_num:
            raise DataError(f"{path}: clusters of {self.feat_num} features, but this model encodes {feat_num} "
                            "(--feat_num); make them with synth-encode-features for this run")
        classes = max(label_nc, 1)
        too_high = [c for c in self.centers if c >= classes + 1]
        if too_high:
            raise DataError(f"{path}: clusters for class {too_high[0]}, but this model has --label_nc {label_nc}")

    def cluster_count(self, label: int) -> int:
        return len(self.centers.get(label, ()))


def named_cluster_path(opt: argparse.Namespace) -> Path:
    """``features_clustered_<n_clusters>.npz`` in the run folder: where synth-encode-features writes."""
    return run_dir(opt) / f"features_clustered_{opt.n_clusters:03d}.npz"


def default_cluster_path(opt: argparse.Namespace) -> Path:
    """The cluster file to read: ``named_cluster_path``; when absent but exactly one cluster file is there, that
    one (so test time needs no repeated --n_clusters)."""
    named = named_cluster_path(opt)
    existing = sorted(run_dir(opt).glob("features_clustered_*.npz"))
    return existing[0] if not named.exists() and len(existing) == 1 else named


# ----- per-segment bookkeeping on one image ---------------------------------------------------------------

def segment_classes(label: np.ndarray, segments: np.ndarray) -> dict[int, int]:
    """Each segment's class: the most frequent label id under it (H x W arrays)."""
    seg_ids, seg_index = np.unique(segments.reshape(-1), return_inverse=True)
    n_labels = int(label.max()) + 1
    votes = np.zeros((len(seg_ids), n_labels), np.int64)
    np.add.at(votes, (seg_index, label.reshape(-1)), 1)
    return {int(s): int(c) for s, c in zip(seg_ids, votes.argmax(1), strict=True)}


def paint_features(segments: np.ndarray, table: Mapping[int, np.ndarray], feat_num: int) -> np.ndarray:
    """[feat_num, H, W] map with each segment's vector from ``table`` (zeros for segments it lacks)."""
    seg_ids, seg_index = np.unique(segments.reshape(-1), return_inverse=True)
    rows = np.stack([np.asarray(table.get(int(s), np.zeros(feat_num)), np.float32) for s in seg_ids])
    return rows[seg_index].reshape(*segments.shape, feat_num).transpose(2, 0, 1).copy()


def sample_segment_features(
    classes: Mapping[int, int], clusters: FeatureClusters, choices: Mapping[int, int], rng: np.random.Generator
) -> dict[int, np.ndarray]:
    """A cluster centre per segment: the chosen index for its class, else a random one; none for classes
    without clusters (their features stay zero, as in pix2pixHD)."""
    table = {}
    for segment, label in sorted(classes.items()):
        count = clusters.cluster_count(label)
        if count == 0:
            continue
        index = choices[label] if label in choices else int(rng.integers(count))
        table[segment] = clusters.centers[label][index]
    return table


def parse_pairs(items: Iterable[str], what: str) -> dict[int, int]:
    """'A:B' strings -> {A: B}; a malformed item is a one-line OptionError."""
    pairs = {}
    for item in items:
        try:
            key, value = (int(part) for part in item.split(":"))
        except ValueError:
            raise OptionError(f"{what} takes KEY:VALUE integer pairs, not '{item}'") from None
        pairs[key] = value
    return pairs


def check_cluster_choices(choices: Mapping[int, int], clusters: FeatureClusters, label_nc: int) -> None:
    """Each chosen class must exist and have that many clusters."""
    for label, index in choices.items():
        if not 0 <= label < label_nc:
            raise OptionError(f"class {label} is not a class of this model (label_nc {label_nc})")
        count = clusters.cluster_count(label)
        if not 0 <= index < count:
            raise OptionError(f"cluster {index} does not exist for class {label}: it has {count} clusters")


def cluster_feature_batch(
    labels: torch.Tensor, segments: torch.Tensor, clusters: FeatureClusters, choices: Mapping[int, int],
    rng: np.random.Generator,
) -> torch.Tensor:
    """[B,feat_num,H,W] features sampled from the clusters for a batch of label and segment maps."""
    maps = []
    for label, segment in zip(labels[:, 0].cpu().numpy(), segments[:, 0].cpu().numpy(), strict=True):
        table = sample_segment_features(segment_classes(label, segment), clusters, choices, rng)
        maps.append(paint_features(segment, table, clusters.feat_num))
    return torch.from_numpy(np.stack(maps))


# ----- encoding the training set and clustering ---------------------------------------------------------------

@torch.inference_mode()
def batch_instance_features(
    model: Pix2PixHDModel, batch: dict, min_area_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, feat_num], classes [N]) of the segments in a batch larger than ``min_area_fraction``."""
    _, real = model.encode_input(batch)
    segments = model.segment_ids(batch)
    label = batch["label"].to(segments.device)
    # E's map before pooling, or the precomputed map of a --load_features run (constant per segment already)
    values = model.netE.net(real) if model.has_encoder else batch["feat"].to(segments.device)
    feature_sums, counts = segment_sums(values, segments)
    n_labels = int(label.max()) + 1
    label_votes, _ = segment_sums(one_hot(label, n_labels), segments)
    height, width = segments.shape[-2:]
    keep = counts > min_area_fraction * height * width
    features = feature_sums[keep] / counts[keep].unsqueeze(1)
    classes = label_votes[keep].argmax(1)
    return features.float().cpu().numpy(), classes.cpu().numpy()


def collect_instance_features(
    model: Pix2PixHDModel, loader: DataLoader, min_area_fraction: float, progress: bool = True
) -> dict[int, np.ndarray]:
    """Features of every large-enough segment of the dataset, grouped by class."""
    grouped: dict[int, list[np.ndarray]] = {}
    for batch in tqdm(loader, desc="encoding features", unit="batch", disable=not progress):
        features, classes = batch_instance_features(model, batch, min_area_fraction)
        for label in np.unique(classes):
            grouped.setdefault(int(label), []).append(features[classes == label])
    return {label: np.concatenate(parts) for label, parts in grouped.items()}


def fit_clusters(features: Mapping[int, np.ndarray], n_clusters: int, seed: int) -> FeatureClusters:
    """K-means (scikit-learn) per class with ``min(n_clusters, instances)`` centres; reproducible for a seed."""
    centers = {}
    feat_num = 0
    for label, values in sorted(features.items()):
        feat_num = values.shape[1]
        k = min(n_clusters, len(values))
        kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(values)
        centers[label] = kmeans.cluster_centers_.astype(np.float32)
    return FeatureClusters(feat_num, centers)


def cluster_training_set(model: Pix2PixHDModel, opt: argparse.Namespace, min_area_fraction: float,
                         target: Path) -> Path:
    """Encode split ``opt.phase`` with the run's E (or read its precomputed maps), fit per-class K-means and
    save the cluster file ``target`` (what ``synth-encode-features`` does); returns the file written."""
    if not model.use_features:
        raise OptionError(f"{opt.name}: this model was trained without --instance_feat / --label_feat")
    opt.size_multiple = generator_size_multiple(opt)
    opt.need_feature_maps = not model.has_encoder  # a --load_features run: cluster its precomputed maps
    dataset = create_dataset(opt)
    if model.has_encoder and not dataset.has_images:
        raise OptionError(f"{opt.dataroot}: encoding features needs the real images of phase '{opt.phase}'")
    loader = DataLoader(dataset, batch_size=opt.batchSize, shuffle=False, num_workers=opt.nThreads)
    features = collect_instance_features(model, loader, min_area_fraction, not opt.no_progress)
    if not features:
        raise DataError(f"{opt.dataroot}: no instance of the {len(dataset)} images of phase '{opt.phase}' covers "
                        f"more than --min_area_fraction {min_area_fraction:g} of its image; nothing to "
                        f"cluster (nothing written)")
    return fit_clusters(features, opt.n_clusters, opt.seed).save(target)
