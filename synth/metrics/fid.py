"""FID and KID on Inception-v3 features.

The network is pytorch-fid's ``InceptionV3`` (the FID Inception of TensorFlow's reference implementation, the one
the published pix2pixHD / SPADE / OASIS / ECGAN numbers use) with the weights file
``pt_inception-2015-12-05-6726825d.pth``. Nothing is downloaded: the file is read from ``--fid_weights PATH`` or from
the torch hub checkpoints folder (``$TORCH_HOME/hub/checkpoints``, where pytorch-fid itself caches it).

The Fréchet distance is computed in float64. ``tr(sqrt(S1 S2))`` is taken as the sum of the square roots of the
eigenvalues of ``sqrt(S1) S2 sqrt(S1)`` (a symmetric matrix, so two ``eigh`` calls instead of the much slower
general ``scipy.linalg.sqrtm``); tests check it against pytorch-fid's ``calculate_frechet_distance``.

KID is the unbiased MMD² with the polynomial kernel ``(x·y / d + 1)³`` averaged over random subsets, with
torch-fidelity's defaults (100 subsets of 1000 features).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from synth.core.arrays_file import load_arrays, require_array
from synth.core.atomic import atomic_write
from synth.core.errors import CheckpointError, DataError, OptionError, WeightsMissingError

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILE
#: ``--fid_weights random``: a randomly initialised network, for tests only (its FID means nothing).
RANDOM_WEIGHTS = "random"
#: feature sizes pytorch-fid offers; 2048 (pool3) is the published protocol, the others are for quick checks.
FID_DIMS = (64, 192, 768, 2048)


def hub_checkpoint_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints``: where torch (and pytorch-fid) cache downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_fid_weights(weights: str | None) -> str:
    """The weights file to load: ``weights`` if given (it must exist), else the hub cache copy; or ``random``."""
    if weights == RANDOM_WEIGHTS:
        return RANDOM_WEIGHTS
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsMissingError(
                f"FID Inception weights not found at {path}: download {FID_WEIGHTS_FILE} from {FID_WEIGHTS_URL} "
                f"and pass its path with --fid_weights"
            )
        return str(path)
    path = hub_checkpoint_dir() / FID_WEIGHTS_FILE
    if not path.is_file():
        raise WeightsMissingError(
            f"FID Inception weights {FID_WEIGHTS_FILE} not found: put it in {path.parent}/ "
            f"(from {FID_WEIGHTS_URL}) or pass --fid_weights PATH"
        )
    return str(path)


@functools.lru_cache(maxsize=1)
def _random_inception_state() -> dict[str, torch.Tensor]:
    """A state dict with the FID Inception's keys and shapes (torchvision's Inception-v3 has the same ones);
    made once per process (``load_state_dict`` copies it)."""
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    return net.state_dict()


def build_inception(weights: str | None = None, dims: int = 2048, device: str | torch.device = "cpu") -> nn.Module:
    """pytorch-fid's FID InceptionV3 returning ``dims``-d features (2048: pool3), in eval mode on ``device``.

    ``weights``: a path to ``pt_inception-2015-12-05-6726825d.pth``, None for the torch hub cache, or ``random``
    (tests only). Raises WeightsMissingError (one line naming the file and where to put it) when it is absent.
    """
    from pytorch_fid import inception as pfi

    if dims not in FID_DIMS:
        raise OptionError(f"--fid_dims must be one of {', '.join(map(str, FID_DIMS))}, not {dims}")
    source = resolve_fid_weights(weights)
    if source == RANDOM_WEIGHTS:
        state = _random_inception_state()
    else:
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{source}: cannot read FID Inception weights ({type(exc).__name__})") from None

    def _provide(*_args: object, **_kwargs: object) -> dict[str, torch.Tensor]:
        return state

    # pytorch-fid fetches its weights through this module-level function; hand it the state dict read above so
    # that nothing is downloaded and a local path can be used.
    try:
        with mock.patch.object(pfi, "load_state_dict_from_url", _provide):
            net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{source}: not the FID Inception weights {FID_WEIGHTS_FILE} ({first})") from None
    return net.eval().to(device)


class _ImageFiles(Dataset):
    """RGB images as float tensors in [0, 1]; resized bicubic to ``size`` (W, H) when given."""

    def __init__(self, files: Sequence[Path], size: tuple[int, int] | None) -> None:
        self.files = list(files)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.files[i]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if self.size is not None and img.size != tuple(self.size):
                    img = img.resize(tuple(self.size), Image.BICUBIC)
                arr = np.asarray(img, dtype=np.uint8).copy()
        except OSError as exc:
            raise DataError(f"{path}: cannot read image ({exc})") from None
        return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)


def image_features(
    files: Sequence[str | Path],
    model: nn.Module,
    *,
    size: tuple[int, int] | None = None,
    batch_size: int = 16,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    desc: str = "FID features",
    progress: bool = True,
) -> np.ndarray:
    """Inception features ``[N, dims]`` (float64) of image files, in batches; ``size`` = (W, H) to resize to."""
    if not files:
        raise DataError("no images to compute FID features of")
    loader = DataLoader(_ImageFiles([Path(f) for f in files], size), batch_size=batch_size, num_workers=num_workers)
    out = []
    with torch.inference_mode(), tqdm(total=len(files), desc=desc, unit="img", disable=not progress) as bar:
        for batch in loader:
            out.append(tensor_features(batch.to(device), model))
            bar.update(batch.shape[0])
    return np.concatenate(out, axis=0)


def tensor_features(images: torch.Tensor, model: nn.Module) -> np.ndarray:
    """Features ``[B, dims]`` (float64) of a batch of RGB images in [0, 1]."""
    with torch.inference_mode():
        feat = model(images)[0]
    if feat.shape[2:] != (1, 1):  # blocks before pool3 give maps: average them as pytorch-fid does
        feat = torch.nn.functional.adaptive_avg_pool2d(feat, (1, 1))
    return feat.reshape(feat.shape[0], -1).double().cpu().numpy()


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[d]`` and covariance ``[d, d]`` (float64, unbiased) of features ``[N, d]``."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise DataError(f"FID needs at least 2 images, got {feats.shape[0] if feats.ndim == 2 else 0}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues set to 0)."""
    vals, vecs = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|² + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2))`` in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise DataError(f"FID statistics do not match: means {mu1.shape} / {mu2.shape}, covariances {s1.shape} / "
                        f"{s2.shape} (computed with different --fid_dims?)")
    diff = mu1 - mu2
    root1 = _psd_sqrt(s1)
    inner = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two feature sets ``[N1, d]`` and ``[N2, d]``."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 2020,
    progress: bool = False,
) -> tuple[float, float, int]:
    """KID: mean and std over ``subsets`` of the unbiased MMD² with the kernel ``(gamma x·y + coef0)^degree``.

    ``gamma`` defaults to 1/d. Subsets are drawn without replacement; when a set has fewer than ``subset_size``
    features, the subset size becomes the smaller set size (returned as the third value).
    """
    x_all = np.asarray(real, dtype=np.float64)
    y_all = np.asarray(fake, dtype=np.float64)
    if x_all.shape[1] != y_all.shape[1]:
        raise DataError(f"KID features differ in size: {x_all.shape[1]} and {y_all.shape[1]}")
    m = min(subset_size, len(x_all), len(y_all))
    if m < 2:
        raise DataError("KID needs at least 2 images in each set")
    g = 1.0 / x_all.shape[1] if gamma is None else gamma
    rng = np.random.RandomState(seed)
    scores = np.empty(subsets, dtype=np.float64)
    for i in tqdm(range(subsets), desc="KID subsets", disable=not progress):
        x = x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all[rng.choice(len(y_all), m, replace=False)]
        k_xx = (g * x @ x.T + coef0) ** degree
        k_yy = (g * y @ y.T + coef0) ** degree
        k_xy = (g * x @ y.T + coef0) ** degree
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        scores[i] = within - 2.0 * k_xy.sum() / (m * m)
    return float(scores.mean()), float(scores.std()), m


def save_statistics(path: str | Path, features: np.ndarray, *, keep_features: bool = True, **meta: object) -> Path:
    """Write ``mu`` and ``sigma`` (pytorch-fid's ``.npz`` keys), optionally the features (for KID), atomically."""
    mu, sigma = feature_statistics(features)
    arrays: dict[str, np.ndarray] = {"mu": mu, "sigma": sigma}
    if keep_features:
        arrays["features"] = np.asarray(features, dtype=np.float32)
    for key, value in meta.items():
        arrays[f"meta_{key}"] = np.asarray(value)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def load_statistics(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(mu, sigma, features or None)`` from an ``.npz`` written by ``save_statistics`` or by pytorch-fid; a
    missing, empty, truncated or inconsistent file is one DataError line naming it."""
    what = "real-image statistics file"
    data = load_arrays(path, what, ("mu", "sigma"), " (needs the arrays 'mu' and 'sigma', e.g. from --save_real_stats)")
    mu = require_array(path, what, "mu", data["mu"], 1).astype(np.float64)
    sigma = require_array(path, what, "sigma", data["sigma"], 2).astype(np.float64)
    if sigma.shape != (len(mu), len(mu)):
        raise DataError(f"{path}: {what}: 'sigma' is {sigma.shape[0]}x{sigma.shape[1]} but 'mu' has {len(mu)} values")
    feats = None
    if "features" in data:
        feats = require_array(path, what, "features", data["features"], 2).astype(np.float64)
        if feats.shape[1] != len(mu):
            raise DataError(f"{path}: {what}: 'features' are {feats.shape[1]}-d but 'mu' has {len(mu)} values")
    return mu, sigma, feats
