"""Per-instance texture as a sum of fixed Fourier features (``--fourier_texture``), the fine group's own layer.

A conv generator has no sense of position, so it cannot draw a chosen stripe pattern in phase with the real
image: from codes pooled over an instance it can only render the instance's mean texture, and a reconstruction
loss then prefers none. Fixed Fourier features (sin and cos of plane waves in image pixels, as StyleGAN3 feeds its
synthesis network) give it that position. ``FourierTextureLayer`` paints each instance's coefficients through its
mask and multiplies the image's brightness by ``1 + sum_k c_k * feature_k``: a Weber luminance contrast, the
quantity the modulated model's fine band measures. Its codes are the coefficients themselves (sin block, then cos
block), and encoders get them by ``fourier_coefficients``: a ridge least-squares fit of a contrast map to the same
features inside each instance (a local Fourier transform; pooling alone cannot see phase).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

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


def amplitudes(coefficients: torch.Tensor) -> torch.Tensor:
    """[N, 2K] sin/cos coefficients -> [N, K] phase-free amplitudes (what retrieval should compare)."""
    sin, cos = coefficients.chunk(2, dim=1)
    return torch.sqrt(sin.square() + cos.square() + 1e-12)


def fourier_coefficients(signal: torch.Tensor, index, bank: FourierBank, ridge: float = RIDGE) -> torch.Tensor:
    """[B,1,H,W] map and a ``SegmentIndex`` -> [N, 2K] least-squares coefficients of the bank (plus a constant,
    dropped) fitted to the map inside each instance; differentiable in ``signal``."""
    batch, _, height, width = signal.shape
    pixels = height * width
    basis = torch.cat([bank.features(height, width, signal.device, signal.dtype),
                       signal.new_ones(1, height, width)]).reshape(-1, pixels)  # [P, X]
    rows = index.index.reshape(batch, pixels)
    masks = signal.new_zeros(index.count, pixels).scatter_(0, rows, 1.0)  # [N, X]: each instance in its own image
    masked = signal.new_zeros(index.count, pixels).scatter(0, rows, signal.reshape(batch, pixels))
    size = basis.shape[0]
    gram = signal.new_zeros(index.count, size * size)
    for start in range(0, pixels, CHUNK_PIXELS):  # Gram_n = sum over the instance's pixels of f f^T
        part = basis[:, start:start + CHUNK_PIXELS]
        outer = (part.unsqueeze(0) * part.unsqueeze(1)).reshape(size * size, -1)
        gram = gram + masks[:, start:start + CHUNK_PIXELS] @ outer.T
    gram = gram.view(-1, size, size)
    count = masks.sum(1).clamp(min=MIN_RIDGE_PIXELS)
    eye = torch.eye(size, device=signal.device, dtype=signal.dtype)
    eye[-1, -1] = 0  # the constant (the instance's mean) is not shrunk, so none of it leaks into the waves
    solution = torch.linalg.solve(gram + ridge * count.view(-1, 1, 1) * eye, (masked @ basis.T).unsqueeze(-1))
    return solution.squeeze(-1)[:, :-1]


class FourierTextureLayer(nn.Module):
    """The last layer of a modulated generator: image brightness times ``1 + painted sum of coefficient * wave``.

    Parameter-free: its codes [N, 2K] are the coefficients (none: the image passes unchanged)."""

    def __init__(self, bank: FourierBank) -> None:
        super().__init__()
        self.bank = bank
        self.channels = bank.waves
        self.layer_number = -1  # set by the generator that owns it

    def contrast(self, index, coefficients: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[B,1,H,W] contrast map: each pixel's instance's coefficients applied to the waves at that pixel."""
        batch, _, height, width = index.index.shape
        waves = self.bank.features(height, width, index.index.device, dtype).reshape(self.bank.num_codes, -1)
        per_instance = coefficients.to(dtype) @ waves  # [N, X]
        return per_instance.gather(0, index.index.reshape(batch, -1)).view(batch, 1, height, width)

    def forward(self, image: torch.Tensor, contrast: torch.Tensor | None) -> torch.Tensor:
        """Image in [-1, 1] and a contrast map (or None) -> the textured image, clamped to [-1, 1]."""
        if contrast is None:
            return image
        return ((image + 1) * (1 + contrast) - 1).clamp(-1, 1)
