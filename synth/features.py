"""Texture control (pix2pixHD §3.4): per-instance features from the encoder, per-class K-means over the training
set, and feature maps sampled from the clusters at test time.

Cluster file (``checkpoints/NAME/features_clustered_NNN.npz``, NumPy's npz, read with ``allow_pickle=False``):
``feat_num`` (scalar), ``classes`` (class ids that have clusters) and ``centers_<class>`` ([k, feat_num] float32,
k <= n_clusters) for each of them.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch.utils.data import DataLoader
from tqdm import tqdm

from synth.checkpoint import run_dir
from synth.core.atomic import atomic_write_bytes
from synth.core.errors import OptionError, SynthError
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
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> FeatureClusters:
        """Read a cluster file; a missing or foreign file is a one-line error saying how to make one."""
        path = Path(path)
        if not path.is_file():
            raise SynthError(f"{path}: feature cluster file not found (make it with synth-encode-features)")
        try:
            with np.load(path, allow_pickle=False) as data:
                classes = [int(c) for c in data["classes"]]
                return cls(int(data["feat_num"]), {c: np.asarray(data[f"centers_{c}"]) for c in classes})
        except (OSError, KeyError, ValueError) as exc:
            raise SynthError(f"{path}: not a feature cluster file ({exc})") from None

    def cluster_count(self, label: int) -> int:
        return len(self.centers.get(label, ()))


def default_cluster_path(opt: argparse.Namespace) -> Path:
    """``features_clustered_<n_clusters>.npz`` in the run folder; when absent but exactly one cluster file is
    there, that one (so test time needs no repeated --n_clusters)."""
    named = run_dir(opt) / f"features_clustered_{opt.n_clusters:03d}.npz"
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
    feature_sums, counts = segment_sums(model.netE.net(real), segments)
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


def cluster_training_set(model: Pix2PixHDModel, opt: argparse.Namespace, min_area_fraction: float) -> Path:
    """Encode split ``opt.phase`` with the run's E, fit per-class K-means and save the cluster file (what
    ``synth-encode-features`` does); returns the file written."""
    if not model.use_features:
        raise OptionError(f"{opt.name}: this model was trained without --instance_feat / --label_feat")
    opt.size_multiple = generator_size_multiple(opt)
    dataset = create_dataset(opt)
    if not dataset.has_images:
        raise OptionError(f"{opt.dataroot}: encoding features needs the real images of phase '{opt.phase}'")
    loader = DataLoader(dataset, batch_size=opt.batchSize, shuffle=False, num_workers=opt.nThreads)
    features = collect_instance_features(model, loader, min_area_fraction, not opt.no_progress)
    clusters = fit_clusters(features, opt.n_clusters, opt.seed)
    return clusters.save(Path(opt.cluster_path) if opt.cluster_path else default_cluster_path(opt))
