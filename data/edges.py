"""Canny edge maps of real photos, the supervision of ECGAN's edge generator.

The official ECGAN edges come from a MATLAB Canny whose hysteresis thresholds are fractions (0.075, 0.175) of the
image's maximum gradient magnitude. ``canny_edges`` reproduces that: Gaussian smoothing (sigma sqrt(2)), Sobel
magnitude (in float), thresholds = ratio x max magnitude, then OpenCV's non-maximum suppression and hysteresis
(L2 gradient).
Edges are computed on the fly, after the joint crop/flip (about 3 ms for a 512x256 photo on one loaded CPU core,
in the loader workers), so they always match the augmented photo and no cache is needed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

SIGMA = math.sqrt(2.0)
GRADIENT_SCALE = 16384.0  # peak gradient magnitude after rescaling (fits int16 per component)


def _gray(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB or (H, W) gray -> (H, W) uint8 gray."""
    if image.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return image


def canny_edges(image_uint8: np.ndarray, low_ratio: float = 0.075, high_ratio: float = 0.175) -> np.ndarray:
    """Binary (H, W) uint8 edge map (0/1) with MATLAB-style relative hysteresis thresholds."""
    if image_uint8.dtype != np.uint8:
        raise ValueError(f"canny_edges needs a uint8 image, got {image_uint8.dtype}")
    if not 0.0 <= low_ratio <= high_ratio:
        raise ValueError(f"need 0 <= low_ratio <= high_ratio, got {low_ratio}, {high_ratio}")
    smoothed = cv2.GaussianBlur(_gray(image_uint8).astype(np.float32), (0, 0), SIGMA, borderType=cv2.BORDER_REPLICATE)
    gx = cv2.Sobel(smoothed, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(smoothed, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    peak = float(np.sqrt(gx * gx + gy * gy).max())
    if peak <= 1e-6:  # a flat image has no edges (and would make every pixel pass a zero threshold)
        return np.zeros(smoothed.shape, np.uint8)
    # Gradients in float (as MATLAB's doubles), rescaled so the peak magnitude is GRADIENT_SCALE: cv2.Canny's
    # gradient form takes int16, and thresholds relative to the peak make the scale irrelevant.
    scale = GRADIENT_SCALE / peak
    dx = np.rint(gx * scale).astype(np.int16)
    dy = np.rint(gy * scale).astype(np.int16)
    edges = cv2.Canny(dx, dy, low_ratio * GRADIENT_SCALE, high_ratio * GRADIENT_SCALE, L2gradient=True)
    return (edges > 0).astype(np.uint8)


def edge_tensor(image_uint8: np.ndarray, low_ratio: float = 0.075, high_ratio: float = 0.175) -> torch.Tensor:
    """FloatTensor[1, H, W] in [-1, 1] (edge +1, background -1), the range of every other image in synth."""
    edges = canny_edges(image_uint8, low_ratio, high_ratio)
    return torch.from_numpy(edges[None]).float().mul_(2.0).sub_(1.0)
