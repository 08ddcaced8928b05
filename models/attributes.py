"""Attribute directions in code space, pseudo-labels and label-rebalancing weights (Self-Conditioned GANs).

A direction is a unit normal ``n`` and an intercept ``b``: an instance's signed distance is ``codes @ n + b``
(InterFaceGAN). Pseudo-labels are those distances clipped to their 0.5th-99.5th percentiles over the training
instances and rescaled to [0, 1]. Rebalancing draws instances (with replacement) so that their label bins are
uniform; the loader then loads each drawn instance's image. The instance is the unit because an image holds
several instances whose labels are independent: weighting whole images cannot flatten their bins.
Everything here is numpy / scikit-learn, saved as npz without pickles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.core.arrays_file import load_arrays, require_array, save_arrays
from synth.core.errors import DataError, OptionError

CLIP_PERCENTILES = (0.5, 99.5)


@dataclass
class Direction:
    """A linear attribute boundary in code space: unit ``normal`` [D] and ``intercept`` (signed distance 0)."""

    normal: np.ndarray
    intercept: float

    def distance(self, codes: np.ndarray) -> np.ndarray:
        """Signed distance of each row of ``codes`` [N, D] from the boundary, in code units."""
        return np.asarray(codes, np.float64) @ self.normal + self.intercept


#: The linear SVM's C is chosen among these by cross-validation (``_cross_validated_c``): with a hundred labelled
#: instances of a 600-dimensional code, C = 1 overfits (held-out Spearman 0.76-0.84 over eight draws of labelled
#: objects in the acceptance set-up, against 0.83-0.89 chosen).
SVM_C_GRID = tuple(float(c) for c in np.logspace(-4, 0, 9))
CV_FOLDS = 5


def _linear_boundary(clf, codes: np.ndarray, binary: np.ndarray) -> tuple[np.ndarray, float]:
    """Fit a linear classifier on standardised codes (so no code dimension dominates); its normal and offset in
    code space."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(codes)
    clf.fit(scaler.transform(codes), binary)
    weight = clf.coef_[0] / scaler.scale_
    return weight, float(clf.intercept_[0]) - float(weight @ scaler.mean_)


def _svm(c: float, seed: int):
    from sklearn.svm import LinearSVC

    return LinearSVC(C=c, max_iter=20000, random_state=seed)


def _cross_validated_c(codes: np.ndarray, labels: np.ndarray, binary: np.ndarray, seed: int) -> float:
    """The C of ``SVM_C_GRID`` whose held-out decision values rank the held-out labels best (mean Spearman over
    stratified folds): it uses the labels' values, not just their side. C = 1 with too few labels for folds."""
    from scipy.stats import spearmanr
    from sklearn.model_selection import StratifiedKFold

    if min(binary.sum(), (~binary).sum()) < CV_FOLDS:
        return 1.0
    folds = list(StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed).split(codes, binary))

    def score(c: float) -> float:
        return float(np.nanmean([spearmanr(codes[test] @ _linear_boundary(_svm(c, seed), codes[train],
                                                                          binary[train])[0], labels[test])[0]
                                 for train, test in folds]))

    return max(SVM_C_GRID, key=score)


def fit_direction(codes: np.ndarray, labels: np.ndarray, method: str = "svm", seed: int = 0) -> Direction:
    """Boundary from labelled instances (InterFaceGAN): a linear SVM (C chosen by cross-validation) or logistic
    regression on standardised codes.

    ``labels`` are binary, or numeric values split at their median (above = positive side)."""
    from sklearn.linear_model import LogisticRegression

    codes, labels = np.asarray(codes, np.float64), np.asarray(labels, np.float64)
    if len(codes) != len(labels):
        raise OptionError(f"{len(codes)} codes but {len(labels)} labels")
    binary = labels > np.median(labels) if len(np.unique(labels)) > 2 else labels == labels.max()
    if binary.all() or not binary.any():
        raise OptionError("the labelled instances must include both sides of the attribute")
    if method == "svm":
        clf = _svm(_cross_validated_c(codes, labels, binary, seed), seed)
    elif method == "logreg":
        clf = LogisticRegression(C=100.0, max_iter=10000, random_state=seed)  # near-separable: weak penalty
    else:
        raise OptionError(f"unknown direction method '{method}' (svm or logreg)")
    weight, bias = _linear_boundary(clf, codes, binary)
    norm = float(np.linalg.norm(weight))
    return Direction(weight / norm, bias / norm)


def centroid_direction(codes: np.ndarray, seed: int = 0) -> Direction:
    """Without labels: the difference of two K-means centroids, the boundary half-way between them.

    The sign is arbitrary (cluster order): flip it with ``flip_direction`` when the positive side is the low end."""
    from sklearn.cluster import KMeans

    centres = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(np.asarray(codes, np.float64)).cluster_centers_
    normal = centres[1] - centres[0]
    normal /= np.linalg.norm(normal)
    return Direction(normal, float(-normal @ (centres[0] + centres[1]) / 2))


def flip_direction(direction: Direction) -> Direction:
    """The same boundary with the sides swapped."""
    return Direction(-direction.normal, -direction.intercept)


@dataclass
class PseudoLabels:
    """Per-instance labels of a training set for ``A`` attributes, and the directions that made them.

    ``keys`` [M] / ``ids`` [M] name the instances; ``distances`` [M, A]; ``lows`` / ``highs`` [A] are the clip
    range (the distances' 0.5th and 99.5th percentiles); ``normals`` [A, D] and ``intercepts`` [A]."""

    attributes: list[str]
    keys: list[str]
    ids: np.ndarray
    distances: np.ndarray
    lows: np.ndarray
    highs: np.ndarray
    normals: np.ndarray
    intercepts: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        """[M, A] labels in [0, 1]."""
        return self.label_of_distance(self.distances)

    def label_of_distance(self, distances: np.ndarray) -> np.ndarray:
        """Signed distances [..., A] -> labels in [0, 1] (clipped to the training range)."""
        return np.clip((distances - self.lows) / (self.highs - self.lows), 0.0, 1.0)

    def distance_of_label(self, labels: np.ndarray) -> np.ndarray:
        """Labels [..., A] in [0, 1] -> signed distances (the inverse inside the clip range)."""
        return self.lows + np.asarray(labels, np.float64) * (self.highs - self.lows)

    def direction(self, attribute: int) -> Direction:
        return Direction(self.normals[attribute], float(self.intercepts[attribute]))

    def attribute_index(self, name: str) -> int:
        """The column (and offset / head row) of attribute ``name``."""
        if name not in self.attributes:
            raise OptionError(f"unknown attribute '{name}' (have: {', '.join(self.attributes)})")
        return self.attributes.index(name)

    def save(self, path: str | Path) -> Path:
        """Write the npz atomically (no pickled objects)."""
        return save_arrays(Path(path), {
            "attributes": np.array(self.attributes), "keys": np.array(self.keys), "ids": self.ids.astype(np.int64),
            "distances": self.distances, "lows": self.lows, "highs": self.highs, "normals": self.normals,
            "intercepts": self.intercepts,
        })

    @classmethod
    def load(cls, path: str | Path) -> PseudoLabels:
        """Read a file written by ``save``; DataError naming the file when it is missing, damaged or inconsistent."""
        what = "pseudo-label file"
        names = ("attributes", "keys", "ids", "distances", "lows", "highs", "normals", "intercepts")
        data = load_arrays(path, what, names, " (make it with synth-selfcond label)")
        attributes, keys = data["attributes"], data["keys"]
        n, a = len(keys), len(attributes)
        shapes = {"attributes": (a,), "keys": (n,), "ids": (n,), "distances": (n, a), "lows": (a,), "highs": (a,),
                  "intercepts": (a,)}
        for name, shape in shapes.items():
            if data[name].shape != shape:
                raise DataError(f"{path}: {what} array '{name}' has shape {data[name].shape}, expected {shape} "
                                f"({n} objects, {a} attributes)")
        if data["normals"].ndim != 2 or data["normals"].shape[0] != a:
            raise DataError(f"{path}: {what} array 'normals' has shape {data['normals'].shape}, expected [{a}, D]")
        for name in ("distances", "lows", "highs", "normals", "intercepts"):
            require_array(path, what, name, data[name], data[name].ndim)
        return cls([str(x) for x in attributes], [str(k) for k in keys], data["ids"], data["distances"],
                   data["lows"], data["highs"], data["normals"], data["intercepts"])


def pseudo_labels(attributes: list[str], directions: list[Direction], codes: np.ndarray, keys: list[str],
                  ids: np.ndarray, percentiles: tuple[float, float] = CLIP_PERCENTILES) -> PseudoLabels:
    """Label every instance (rows of ``codes``) by its signed distance along each direction."""
    distances = np.stack([d.distance(codes) for d in directions], axis=1)
    lows, highs = np.percentile(distances, percentiles, axis=0)
    if np.any(highs <= lows):
        raise OptionError("the instances' distances along a direction are all equal; no labels can be made")
    return PseudoLabels(list(attributes), list(keys), np.asarray(ids, np.int64), distances, lows, highs,
                        np.stack([d.normal for d in directions]), np.array([d.intercept for d in directions]))


# ----- rebalancing -------------------------------------------------------------------------------------------

def label_bins(labels: np.ndarray, bins: int) -> np.ndarray:
    """Bin number (0 .. bins-1) of each label in [0, 1]."""
    return np.minimum((np.asarray(labels) * bins).astype(np.int64), bins - 1)


def instance_weights(labels: np.ndarray, bins: int = 10) -> np.ndarray:
    """Sampling weights [M] (sum 1) under which a drawn instance's label bin is uniform over the filled bins."""
    bin_of = label_bins(labels, bins)
    counts = np.bincount(bin_of, minlength=bins)
    weights = 1.0 / counts[bin_of]
    return weights / weights.sum()


def image_weights(weights: np.ndarray, image_of: np.ndarray, n_images: int) -> np.ndarray:
    """Per-image weights [S] such that drawing an image equals drawing an instance by ``weights`` and loading its
    image (``image_of`` [M]: the image number of each instance); images without instances get none."""
    return np.bincount(np.asarray(image_of, np.int64), weights=weights, minlength=n_images)


@dataclass
class ResampleReport:
    """What a resampled epoch holds: distinct samples and the most times one sample repeats."""

    unique: int
    max_repeats: int
    total: int

    def __str__(self) -> str:
        return f"{self.unique} unique samples of {self.total} drawn, largest repeat count {self.max_repeats}"


def resample_report(indices: np.ndarray) -> ResampleReport:
    counts = np.bincount(np.asarray(indices, np.int64))
    return ResampleReport(int((counts > 0).sum()), int(counts.max(initial=0)), int(len(indices)))


def bin_shares(labels: np.ndarray, bins: int) -> np.ndarray:
    """Share of each of ``bins`` equal label bins among ``labels``."""
    counts = np.bincount(label_bins(labels, bins), minlength=bins)
    return counts / max(counts.sum(), 1)


def rebalance_figures(labels: np.ndarray, drawn: np.ndarray, bins: int = 10,
                      values: np.ndarray | None = None) -> dict[str, float]:
    """How resampling changed the distribution: the max/min ratio of the interior label bins' shares (of ``bins``,
    what the sampler flattens) before and after, and the share of the two sparsest thirds of the range before and
    after. The thirds are taken over ``values`` (e.g. the attribute's true value, already scaled to [0, 1]) when
    given, so they show what resampling does to the attribute itself; else over the labels."""
    before, after = bin_shares(labels, bins), bin_shares(labels[drawn], bins)
    measured = labels if values is None else np.asarray(values, np.float64)
    thirds_before, thirds_after = bin_shares(measured, 3), bin_shares(measured[drawn], 3)
    sparse = np.argsort(thirds_before)[:2]

    def ratio(shares: np.ndarray) -> float:
        interior = shares[1:-1]
        return float(interior.max() / interior.min()) if interior.min() > 0 else float("inf")

    return {"interior_ratio_before": ratio(before), "interior_ratio_after": ratio(after),
            "sparse_share_before": float(thirds_before[sparse].sum()),
            "sparse_share_after": float(thirds_after[sparse].sum())}
