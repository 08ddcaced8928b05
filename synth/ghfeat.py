"""Uses of a trained GH-Feat encoder (``--model ghfeat`` or ``ghfeat_baseline``): reconstruction of an image given
its layout, style mixing per layer group, per-class K-means per group, nearest-neighbour retrieval of instances,
a linear probe and harmonisation; each a Python function and a ``synth-ghfeat`` subcommand.

Layer groups follow ``models/networks/generator_modulated.py``: coarse (lowest resolutions), mid, fine (full
resolution). An instance's vector for a group is its codes of that group's layers, concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from synth.core.arrays_file import save_arrays
from synth.core.errors import OptionError
from synth.models.networks.fourier_texture import amplitudes
from synth.models.networks.generator_modulated import GROUPS, Codes
from synth.models.networks.segments import SegmentIndex, index_segments

DEFAULT_MIN_AREA_FRACTION = 1 / 64


# ----- encoding and reconstruction ---------------------------------------------------------------------------

@dataclass
class Encoded:
    """A batch's layout input, instance ids, codes and the instance numbering the codes' rows follow."""

    semantics: torch.Tensor
    segments: torch.Tensor
    codes: Codes
    index: SegmentIndex
    real: torch.Tensor | None = None


@torch.no_grad()
def encode(model, batch: dict) -> Encoded:
    """Codes of the batch's real images (every instance), with what decoding them needs."""
    semantics, real = model.encode_input(batch)
    if real is None:
        raise OptionError("encoding needs the real images")
    segments = model.segment_ids(batch)
    return Encoded(semantics, segments, model.encode_codes(real, segments), index_segments(segments), real)


@torch.no_grad()
def decode(model, encoded: Encoded, codes: Codes | None = None) -> torch.Tensor:
    """The frozen generator on the encoded layout with ``codes`` (default: the encoded ones)."""
    return model.synthesize(encoded.semantics, encoded.segments, encoded.codes if codes is None else codes)


def reconstruct(model, batch: dict) -> torch.Tensor:
    """Inversion: encode the real images, decode them with their own layouts ([B,3,H,W] in [-1, 1])."""
    return decode(model, encode(model, batch))


# ----- style mixing ------------------------------------------------------------------------------------------

def group_layers(model, group: str) -> list[int]:
    """Layer numbers of ``group`` in the model's generator."""
    if group not in GROUPS:
        raise OptionError(f"unknown layer group '{group}'; choose one of: {', '.join(GROUPS)}")
    return model.netG.group_layers[group]


def row_of(index: SegmentIndex, image: int, instance: int) -> int:
    """Row of (batch position, instance id) in the codes; OptionError when that instance is not there."""
    key = image * (1 << 16) + instance
    hits = (index.keys == key).nonzero()
    if hits.numel() == 0:
        ids = index.id_of()[index.image_of() == image].tolist()
        raise OptionError(f"instance {instance} is not in image {image} (ids: {ids[:20]})")
    return int(hits[0, 0])


def mix_codes(recipient: Codes, donor: Codes, layers: list[int], pairs: list[tuple[int, int]]) -> Codes:
    """A copy of ``recipient`` whose rows take the donor's codes in ``layers``: ``pairs`` of (recipient row,
    donor row). Every other code is left exactly as it was."""
    mixed = [c.clone() for c in recipient]
    if not pairs:
        return mixed
    rows_r = torch.tensor([r for r, _ in pairs], device=mixed[0].device)
    rows_d = torch.tensor([d for _, d in pairs], device=mixed[0].device)
    for layer in layers:
        mixed[layer][rows_r] = donor[layer][rows_d].to(mixed[layer].dtype)
    return mixed


def matching_pairs(recipient: Encoded, donor: Encoded, classes_r: dict[int, int], classes_d: dict[int, int]
                   ) -> list[tuple[int, int]]:
    """Image-level mixing of image 0 of each: each recipient instance takes the donor instance with the same id,
    else the donor's first instance of the same class; instances with neither keep their codes."""
    ids_d = [int(i) for i, b in zip(donor.index.id_of(), donor.index.image_of(), strict=True) if b == 0]
    pairs = []
    for row, (image, inst) in enumerate(zip(recipient.index.image_of().tolist(), recipient.index.id_of().tolist(),
                                            strict=True)):
        if image != 0:
            continue
        same = inst if inst in ids_d else next((i for i in ids_d if classes_d.get(i) == classes_r.get(inst)), None)
        if same is not None:
            pairs.append((row, row_of(donor.index, 0, same)))
    return pairs


def style_mix(model, recipient_batch: dict, donor_batch: dict, group: str, recipient_instance: int | None = None,
              donor_instance: int | None = None) -> torch.Tensor:
    """The recipient image (first of its batch) re-rendered with the donor's ``group`` codes: of one instance when
    both instance ids are given, else of every matching instance (same id, else same class)."""
    layers = group_layers(model, group)
    rec, don = encode(model, recipient_batch), encode(model, donor_batch)
    if (recipient_instance is None) != (donor_instance is None):
        raise OptionError("give both instance ids (recipient and donor) or neither")
    if recipient_instance is not None:
        pairs = [(row_of(rec.index, 0, recipient_instance), row_of(don.index, 0, donor_instance))]
    else:
        pairs = matching_pairs(rec, don, _classes(recipient_batch, rec), _classes(donor_batch, don))
    return decode(model, rec, mix_codes(rec.codes, don.codes, layers, pairs))[:1]


def _classes(batch: dict, encoded: Encoded) -> dict[int, int]:
    """Class of each instance of image 0 (majority label under it)."""
    from synth.features import segment_classes

    return segment_classes(batch["label"][0, 0].numpy(), encoded.segments[0, 0].cpu().numpy())


# ----- instance codes of a dataset ---------------------------------------------------------------------------

@dataclass
class InstanceCodes:
    """Per-instance code vectors of a split: one [N, D] array per group, with each row's image key, id and class."""

    groups: dict[str, np.ndarray]
    keys: list[str] = field(default_factory=list)
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def vectors(self, groups: list[str] | None = None) -> np.ndarray:
        """The chosen groups' vectors, each L2-normalised so every group weighs the same, concatenated."""
        parts = [self.groups[g] / np.maximum(np.linalg.norm(self.groups[g], axis=1, keepdims=True), 1e-12)
                 for g in (groups or list(self.groups))]
        return np.concatenate(parts, axis=1)


def retrieval_part(netG, layer: int, codes: torch.Tensor) -> torch.Tensor:
    """A layer's codes as retrieval, clustering and probes see them: a Fourier texture layer's coefficients become
    their phase-free amplitudes (the phase says where the stripes sit in the image, not what they are)."""
    return amplitudes(codes) if layer in netG.texture_banks else codes


@torch.no_grad()
def collect_codes(model, loader: DataLoader, min_area_fraction: float = DEFAULT_MIN_AREA_FRACTION,
                  progress: bool = False) -> InstanceCodes:
    """Encode every batch; keep the instances larger than ``min_area_fraction`` of their image."""
    from tqdm import tqdm

    groups: dict[str, list[np.ndarray]] = {g: [] for g in GROUPS if model.netG.group_layers[g]}
    keys: list[str] = []
    ids, classes = [], []
    for batch in tqdm(loader, desc="encoding codes", unit="batch", disable=not progress):
        enc = encode(model, batch)
        area = torch.zeros(enc.index.count, device=enc.segments.device).index_add_(
            0, enc.index.index.reshape(-1), torch.ones(enc.index.index.numel(), device=enc.segments.device))
        height, width = enc.segments.shape[-2:]
        keep = (area > min_area_fraction * height * width).cpu().numpy()
        label = batch["label"].to(enc.segments.device).long()
        votes = torch.zeros(enc.index.count, int(label.max()) + 1, device=label.device)
        votes.index_put_((enc.index.index.reshape(-1), label.reshape(-1)), torch.ones(label.numel(),
                         device=label.device), accumulate=True)
        for group in groups:
            vec = torch.cat([retrieval_part(model.netG, i, enc.codes[i]) for i in model.netG.group_layers[group]], 1)
            groups[group].append(vec.float().cpu().numpy()[keep])
        images = enc.index.image_of().cpu().numpy()[keep]
        keys += [batch["key"][i] for i in images]
        ids.append(enc.index.id_of().cpu().numpy()[keep])
        classes.append(votes.argmax(1).cpu().numpy()[keep])
    return InstanceCodes({g: np.concatenate(v) for g, v in groups.items()}, keys, np.concatenate(ids),
                         np.concatenate(classes))


# ----- clustering, retrieval, probing ---------------------------------------------------------------------------

def cluster_codes(codes: InstanceCodes, n_clusters: int, seed: int = 0) -> dict[str, dict[int, np.ndarray]]:
    """Per-class K-means (scikit-learn) of each group's vectors: {group: {class: [k, D] centres}}."""
    from sklearn.cluster import KMeans

    out: dict[str, dict[int, np.ndarray]] = {}
    for group, values in codes.groups.items():
        out[group] = {}
        for label in np.unique(codes.classes):
            rows = values[codes.classes == label]
            k = min(n_clusters, len(rows))
            out[group][int(label)] = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(rows).cluster_centers_
    return out


def save_clusters(path: str | Path, clusters: dict[str, dict[int, np.ndarray]]) -> Path:
    """npz (no pickles): ``groups``, and ``centers_<group>_<class>`` ([k, D] float32) for each."""
    arrays = {"groups": np.array(sorted(clusters))}
    for group, per_class in clusters.items():
        arrays |= {f"centers_{group}_{c}": v.astype(np.float32) for c, v in per_class.items()}
    return save_arrays(path, arrays)


def retrieve(query: np.ndarray, gallery: np.ndarray, k: int = 5, exclude: np.ndarray | None = None) -> np.ndarray:
    """[M, k] gallery rows nearest each query row by cosine similarity; ``exclude`` [M] (or None) is a gallery row
    each query must not return (itself, when query and gallery are the same set)."""
    q = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    similarity = q @ g.T
    if exclude is not None:
        similarity[np.arange(len(q)), exclude] = -np.inf
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def precision_at_k(neighbours: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray) -> float:
    """Mean share of the retrieved neighbours whose label equals their query's."""
    return float((gallery_labels[neighbours] == query_labels[:, None]).mean())


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 seed: int = 0) -> float:
    """Held-out accuracy of a logistic regression (scikit-learn, standardised inputs) trained on codes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(train_x, train_y)
    return float(probe.score(test_x, test_y))


# ----- harmonisation -----------------------------------------------------------------------------------------------

@torch.no_grad()
def harmonise(model, batch: dict, pasted: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste ``pasted`` [B,3,H,W] into the batch's real images where ``mask`` [B,1,H,W] is set, then encode and
    decode the composite: the generator re-renders the pasted region in a style its codes can express.
    Returns (composite, harmonised)."""
    semantics, real = model.encode_input(batch)
    if real is None:
        raise OptionError("harmonisation needs the real images")
    mask = mask.to(real.device, real.dtype)
    composite = real * (1 - mask) + pasted.to(real.device, real.dtype) * mask
    segments = model.segment_ids(batch)
    codes = model.encode_codes(composite, segments)
    return composite, model.synthesize(semantics, segments, codes)


def highlighted(batch: dict, instance: int, dim: float = 0.3) -> np.ndarray:
    """The batch's first real image as uint8 RGB with every pixel outside ``instance`` dimmed (retrieval pictures)."""
    from synth.visualize import tensor_to_image

    image = tensor_to_image(batch["image"][0]).astype(np.float32)
    inside = (batch["inst"][0, 0] == instance).numpy()[..., None]
    return np.where(inside, image, image * dim).round().astype(np.uint8)
