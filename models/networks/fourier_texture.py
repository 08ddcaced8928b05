"""Per-instance texture as a sum of fixed Fourier features (``--fourier_texture``), the fine group's own layer.

A conv generator has no sense of position, so it cannot draw a chosen stripe pattern in phase with the real
image: from codes pooled over an instance it can only render the instance's mean texture, and a reconstruction
loss then prefers none. Fixed Fourier features (sin and cos of plane waves in image pixels, as StyleGAN3 feeds its
synthesis network) give it that position. Its codes are per-instance coefficients of those waves (sin block, then
cos block), and encoders get them by ``fourier_coefficients``: a ridge least-squares fit of a Weber luminance
contrast map (the quantity the modulated model's fine band measures) inside each instance, a local Fourier
transform (pooling alone cannot see phase).

Two conventions make a code a texture of its own, whichever instance wears it:

* phases are measured from the instance's centroid, so a code moved to another instance draws the same pattern
  around that instance's centre (with image-origin phases, a stripe frequency between two bank frequencies is a
  beat of the two, and another place can sit on its node);
* ``FourierTextureLayer`` *replaces* the bank's band of each instance, as AdaIN replaces feature statistics: it
  fits the incoming image's own fine band, and multiplies the brightness by ``1 + sum_k (c_k - own_k) feature_k``,
  so whatever texture the convolutions drew in that band is swapped for the code's, not mixed with it.

The fit reads each instance's interior only (``interior``): its outline is no part of its texture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from synth.models.networks.segments import SegmentIndex, frequency_bands, instance_centroids

#: Wave-vector directions in degrees from +x (0: vertical stripes, 90: horizontal ones).
BANK_ANGLES_DEG = (0.0, 45.0, 90.0, 135.0)
#: Bank frequencies are ``k / (4 * cell)`` cycles per pixel for these k: periods from 4/3 of the generator's
#: coarsest cell (the fine band's lower edge) down to 2/5 of it, and never above ``MAX_FREQUENCY``.
BANK_STEPS = range(3, 11)
MAX_FREQUENCY = 0.35
#: Ridge weight of the least-squares fit, relative to the instance's pixel count ...
RIDGE = 1e-2
#: ... counted as at least this many pixels: an instance smaller than that cannot pin 2K waves down, and without
#: the floor its coefficients (and their gradients) grow as 1 / its size; with it, a tiny instance gets no texture.
MIN_RIDGE_PIXELS = 256
#: Pixels per chunk when the fit's Gram matrices are accumulated (bounds memory on large images).
CHUNK_PIXELS = 4096


@dataclass(frozen=True)
class FourierBank:
    """Plane waves ``sin / cos(2 pi f (x cos a + y sin a))`` in pixel coordinates (origin: the top-left pixel)."""

    frequencies: tuple[float, ...]  # cycles per pixel
    angles_deg: tuple[float, ...] = BANK_ANGLES_DEG

    @classmethod
    def for_cell(cls, cell: int) -> FourierBank:
        """The default bank for a generator whose coarsest cell is ``cell`` pixels (see ``BANK_STEPS``)."""
        frequencies = tuple(k / (4 * cell) for k in BANK_STEPS if k / (4 * cell) <= MAX_FREQUENCY)
        return cls(frequencies)

    @property
    def waves(self) -> int:
        """Number of wave vectors (frequency x direction)."""
        return len(self.frequencies) * len(self.angles_deg)

    @property
    def num_codes(self) -> int:
        """Coefficients per instance: a sin and a cos amplitude per wave vector."""
        return 2 * self.waves

    def features(self, height: int, width: int, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[2K, H, W]: every wave's sin, then every wave's cos."""
        ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float64),
                                torch.arange(width, device=device, dtype=torch.float64), indexing="ij")
        phases = []
        for frequency in self.frequencies:
            for angle in self.angles_deg:
                a = math.radians(angle)
                phases.append(2 * math.pi * frequency * (xs * math.cos(a) + ys * math.sin(a)))
        phase = torch.stack(phases)
        return torch.cat([phase.sin(), phase.cos()]).to(dtype)

    def phases_at(self, points: torch.Tensor) -> torch.Tensor:
        """[N, 2] (x, y) pixel positions -> [N, K] every wave's phase there (float64: positions reach thousands)."""
        directions = torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))]
                                   for _ in self.frequencies for a in self.angles_deg], dtype=torch.float64,
                                  device=points.device)
        steps = torch.tensor([2 * math.pi * f for f in self.frequencies for _ in self.angles_deg],
                             dtype=torch.float64, device=points.device)
        return points.to(torch.float64) @ directions.T * steps


def amplitudes(coefficients: torch.Tensor) -> torch.Tensor:
    """[N, 2K] sin/cos coefficients -> [N, K] phase-free amplitudes (what retrieval should compare)."""
    sin, cos = coefficients.chunk(2, dim=1)
    return torch.sqrt(sin.square() + cos.square() + 1e-12)


def shift_phases(coefficients: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
    """Coefficients of waves in one frame -> those of the same signal with every wave's phase origin moved on by
    ``phases`` [N, K] (``s sin(t) + c cos(t)`` with ``t = t' + phase``); ``-phases`` moves it back."""
    sin, cos = coefficients.chunk(2, dim=1)
    turn_cos, turn_sin = phases.cos().to(coefficients.dtype), phases.sin().to(coefficients.dtype)
    return torch.cat([sin * turn_cos - cos * turn_sin, sin * turn_sin + cos * turn_cos], dim=1)


@dataclass(frozen=True)
class _Geometry:
    """The bank on one numbering's image size and instances: what painting and fitting both need."""

    waves: torch.Tensor  # [2K, X]: the bank's features
    centre_phases: torch.Tensor  # [N, K] every wave's phase at each instance's centroid


@dataclass(frozen=True)
class _InstanceFit:
    """What a least-squares fit on one numbering needs besides the signal: the factorised normal equations of every
    instance (they depend on the masks only, not on the map that is fitted)."""

    geometry: _Geometry
    basis: torch.Tensor  # [P, X]: the waves and a constant
    inside: torch.Tensor  # [B, X]: 1 on the pixels the fit reads (``interior``), else 0
    factors: tuple[torch.Tensor, torch.Tensor]  # LU of Gram + ridge, [N, P, P] (P = 2K + a constant), pivots


def _geometry(index: SegmentIndex, bank: FourierBank, device: torch.device, dtype: torch.dtype) -> _Geometry:
    """The bank's features and the instances' centre phases for ``index``, computed once per numbering."""
    height, width = index.index.shape[-2:]
    key = ("fourier_geometry", bank, str(device), dtype)
    if key not in index.derived:
        index.derived[key] = _Geometry(bank.features(height, width, device, dtype).reshape(bank.num_codes, -1),
                                       bank.phases_at(instance_centroids(index)))
    return index.derived[key]


def interior(index: SegmentIndex) -> torch.Tensor:
    """[B,1,H,W] True where a pixel's 8 neighbours belong to its instance: the fit skips each instance's outer
    ring, whose edge (an outline, the neighbour's colour bleeding in) is no part of its texture but would be fitted
    as waves and painted onto whichever instance the code is given to."""
    ids = index.index.to(torch.float32)  # rows < 2**24: exact
    highest = F.max_pool2d(ids, 3, stride=1, padding=1)
    lowest = -F.max_pool2d(-ids, 3, stride=1, padding=1)
    return (highest == ids) & (lowest == ids)


def _instance_fit(index: SegmentIndex, bank: FourierBank, device: torch.device, dtype: torch.dtype,
                  ridge: float) -> _InstanceFit:
    """The fit's mask-only part for ``index``, computed once per numbering (the encoder's read-out and the texture
    layer's own-band removal of a step share it)."""
    key = ("fourier_fit", bank, str(device), dtype, ridge)
    if key in index.derived:
        return index.derived[key]
    geometry = _geometry(index, bank, device, dtype)
    pixels = geometry.waves.shape[1]
    with torch.no_grad():
        basis = torch.cat([geometry.waves, torch.ones(1, pixels, device=device, dtype=dtype)])  # [P, X]
        rows = index.index.reshape(-1, pixels)
        inside = interior(index).reshape(-1, pixels).to(dtype)
        masks = torch.zeros(index.count, pixels, device=device, dtype=dtype).scatter_(0, rows, inside)  # [N, X]
        size = basis.shape[0]
        gram = torch.zeros(index.count, size, size, device=device, dtype=dtype)
        for start in range(0, pixels, CHUNK_PIXELS):  # Gram_n = sum over the instance's pixels of f f^T
            part = basis[:, start:start + CHUNK_PIXELS]
            gram += (masks[:, start:start + CHUNK_PIXELS].unsqueeze(1) * part) @ part.T
        count = masks.sum(1).clamp(min=MIN_RIDGE_PIXELS)
        eye = torch.eye(size, device=device, dtype=dtype)
        # the constant (the instance's mean) is barely shrunk, so none of it leaks into the waves; an instance with
        # no interior pixel (a sliver) still gets a solvable system, and no texture
        eye[-1, -1] = 1e-6
        factors = torch.linalg.lu_factor(gram + ridge * count.view(-1, 1, 1) * eye)
    fit = _InstanceFit(geometry, basis, inside, factors)
    index.derived[key] = fit
    return fit


def fourier_coefficients(signal: torch.Tensor, index: SegmentIndex, bank: FourierBank, ridge: float = RIDGE
                         ) -> torch.Tensor:
    """[B,1,H,W] map and a ``SegmentIndex`` -> [N, 2K] least-squares coefficients of the bank (plus a constant,
    dropped) fitted to the map inside each instance, phases from the instance's centroid; differentiable in
    ``signal``."""
    batch = signal.shape[0]
    fit = _instance_fit(index, bank, signal.device, signal.dtype, ridge)
    rows = index.index.reshape(batch, -1)
    masked = signal.new_zeros(index.count, rows.shape[1]).scatter(0, rows, signal.reshape(batch, -1) * fit.inside)
    solution = torch.linalg.lu_solve(*fit.factors, (masked @ fit.basis.T).unsqueeze(-1))
    return shift_phases(solution.squeeze(-1)[:, :-1], fit.geometry.centre_phases)


class FourierTextureLayer(nn.Module):
    """The last layer of a modulated generator: each instance's bank band replaced by its coefficients.

    Parameter-free: its codes [N, 2K] are the coefficients in each instance's frame (none: the image passes
    unchanged); ``cell`` is the generator's coarsest cell, the edge of the fine band it measures."""

    def __init__(self, bank: FourierBank, cell: int) -> None:
        super().__init__()
        self.bank, self.cell = bank, cell
        self.channels = bank.waves
        self.layer_number = -1  # set by the generator that owns it

    def contrast(self, index: SegmentIndex, coefficients: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[B,1,H,W] contrast map: each pixel's instance's coefficients applied to the waves at that pixel."""
        batch, _, height, width = index.index.shape
        geometry = _geometry(index, self.bank, index.index.device, dtype)
        in_image_frame = shift_phases(coefficients, -geometry.centre_phases)
        per_instance = in_image_frame.to(dtype) @ geometry.waves  # [N, X]
        return per_instance.gather(0, index.index.reshape(batch, -1)).view(batch, 1, height, width)

    def forward(self, image: torch.Tensor, index: SegmentIndex, coefficients: torch.Tensor | None) -> torch.Tensor:
        """Image in [-1, 1] -> the image whose instances wear ``coefficients`` in the bank's band, in [-1, 1].

        The image's own band is taken out to first order (``(1 + own)(1 + c - own) ~ 1 + c``), with gradients,
        so the convolutions learn that drawing in this band is futile rather than that it adds to the code."""
        if coefficients is None:
            return image
        with torch.autocast(image.device.type, enabled=False):  # a least-squares solve wants float32
            own = fourier_coefficients(frequency_bands(image.float(), index, self.cell)["fine"], index, self.bank)
            contrast = self.contrast(index, coefficients.float() - own, torch.float32)
        return ((image + 1) * (1 + contrast.to(image.dtype)) - 1).clamp(-1, 1)
