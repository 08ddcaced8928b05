"""ECGAN's similarity loss: the label map S'' recovered from the generated image should relate pixels as S does.

For M sampled pixels, the similarity matrices are A = S_M S_M^T (1 where two pixels share a class) and
A'' = P_M P_M^T (the probability that S'' gives both pixels the same class); the loss is the binary
cross-entropy between them over the M^2 pairs, which is 0 exactly when S'' = S.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def similarity_matrix(probs: torch.Tensor) -> torch.Tensor:
    """[B, M, N] per-pixel class distributions -> [B, M, M] pairwise same-class probabilities."""
    return probs @ probs.transpose(1, 2)


def similarity_loss(
    pred_probs: torch.Tensor, target: torch.Tensor, n_pixels: int = 1024, generator=None
) -> torch.Tensor:
    """BCE between the pixel-pair similarity matrices of ``pred_probs`` (softmax of S'', [B, N, H, W]) and
    ``target`` (one-hot S, [B, N, H, W]) on ``n_pixels`` pixels per image sampled at the same places."""
    b, n, h, w = pred_probs.shape
    pred = pred_probs.reshape(b, n, h * w).transpose(1, 2)
    tgt = target.to(pred.dtype).reshape(b, n, h * w).transpose(1, 2)
    if h * w > n_pixels:
        index = torch.randperm(h * w, device=pred.device, generator=generator)[:n_pixels]
        pred, tgt = pred[:, index], tgt[:, index]
    sim_pred = similarity_matrix(pred).float().clamp(0.0, 1.0)
    sim_tgt = similarity_matrix(tgt).float().clamp(0.0, 1.0)
    with torch.autocast(sim_pred.device.type, enabled=False):  # BCE is not autocast-safe
        return F.binary_cross_entropy(sim_pred, sim_tgt)
