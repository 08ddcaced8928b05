"""ECGAN's pixel-wise contrastive loss across the layouts of a batch (and a memory bank of past batches).

For an anchor embedding i with positives P_i (same class) and negatives N_i (other classes), all L2-normalised:
    L_i = mean_{i+ in P_i} -log( exp(i.i+/tau) / (exp(i.i+/tau) + sum_{i- in N_i} exp(i.i-/tau)) ).
Defaults follow the cross-image pixel contrast of Wang et al. (ICCV 2021): 256-d projection, tau 0.1, at most
1024 sampled anchors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pixel_contrast_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    bank_embeddings: torch.Tensor | None = None,
    bank_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of L_i over anchors ``embeddings`` [A, D] (normalised) with class ``labels`` [A] that have a positive.

    Keys are the other anchors plus the (detached) bank; an anchor is never its own positive. Label -1 marks an
    empty slot (an anchor ``sample_pixels`` could not fill, an unfilled bank row): it is neither anchor nor key.
    Nothing is read back to the host.
    """
    keys, key_labels = embeddings, labels
    if bank_embeddings is not None and bank_embeddings.shape[0] > 0:
        keys = torch.cat([embeddings, bank_embeddings.to(embeddings.dtype)], dim=0)
        key_labels = torch.cat([labels, bank_labels])
    logits = embeddings @ keys.t() / temperature  # [A, K]
    same = labels[:, None] == key_labels[None, :]
    not_self = torch.ones_like(same)
    not_self[:, : labels.shape[0]].fill_diagonal_(False)
    filled = (labels >= 0)[:, None] & (key_labels >= 0)[None, :]
    positives = same & not_self & filled
    negatives = ~same & filled
    neg_lse = logits.masked_fill(~negatives, float("-inf")).logsumexp(dim=1, keepdim=True)  # -inf: no negatives
    per_pair = torch.logaddexp(logits, neg_lse) - logits  # -log(e^p / (e^p + sum e^n))
    n_pos = positives.sum(dim=1)
    per_anchor = (per_pair * positives).sum(dim=1) / n_pos.clamp(min=1)
    has_pos = (n_pos > 0).to(per_anchor.dtype)
    return (per_anchor * has_pos).sum() / has_pos.sum().clamp(min=1)  # 0 (with a graph) when no anchor has one


def sample_pixels(labels: torch.Tensor, ignore_index: int, max_samples: int,
                  generator: torch.Generator | None = None,
                  num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(flat indices, filled) of ``min(max_samples, pixels)`` anchor slots: labelled pixels of the whole batch
    drawn without replacement, class-balanced (each present class equally likely, so small objects get anchors
    too); ``filled`` is False for slots left over when fewer pixels are labelled. Weighted sampling by
    exponential keys (Efraimidis-Spirakis) with a top-k, so no count is read back to the host (give
    ``num_classes``, an upper bound of the label ids, and the class counts need no sync either)."""
    flat = labels.reshape(-1)
    valid = flat != ignore_index
    safe = torch.where(valid, flat, 0)
    if num_classes is None:
        counts = torch.bincount(safe, weights=valid.float())
    else:
        counts = torch.zeros(num_classes, device=flat.device).scatter_add_(0, safe, valid.float())
    weights = valid.float() / counts.clamp(min=1)[safe]
    uniform = torch.rand(flat.shape, generator=generator, device=flat.device).clamp(min=1e-12)
    keys = torch.where(valid, uniform.log() / weights.clamp(min=1e-30), float("-inf"))
    top = keys.topk(min(max_samples, flat.numel())).indices
    return top, valid[top]
class PixelContrastLoss(nn.Module):
    """The contrastive term: samples anchor pixels of the batch, projects nothing itself (the model's projection
    head does), and keeps a FIFO memory bank of past embeddings: buffers and a fill count in its state dict, which
    the model hands the trainer as extra state (``stateful_parts``) so a resumed run continues with the same bank."""

    def __init__(self, dim: int, temperature: float = 0.1, max_anchors: int = 1024, memory_size: int = 0) -> None:
        super().__init__()
        self.temperature = temperature
        self.max_anchors = max_anchors
        self.memory_size = memory_size
        self.register_buffer("bank", torch.zeros(memory_size, dim))
        self.register_buffer("bank_labels", torch.full((memory_size,), -1, dtype=torch.long))
        self.register_buffer("bank_ptr", torch.zeros((), dtype=torch.long))
        self.bank_filled = 0  # a host-side count, so reading the bank needs no sync

    def get_extra_state(self) -> dict[str, int]:
        """The fill count goes into the state dict beside the buffers."""
        return {"filled": self.bank_filled}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.bank_filled = int(state["filled"])

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of anchor ``embeddings`` [A, D] (normalised) with ``labels`` [A]; then they enter the bank."""
        n = self.bank_filled
        loss = pixel_contrast_loss(
            embeddings, labels, self.temperature,
            self.bank[:n] if n else None, self.bank_labels[:n] if n else None,
        )
        if self.memory_size and self.training:
            self._enqueue(embeddings.detach(), labels)
        return loss

    @torch.no_grad()
    def _enqueue(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Write the newest embeddings over the oldest (ring buffer; no host sync but the fill counter)."""
        take = min(embeddings.shape[0], self.memory_size)
        slots = (self.bank_ptr + torch.arange(take, device=self.bank.device)) % self.memory_size
        self.bank[slots] = F.normalize(embeddings[:take].to(self.bank.dtype), dim=1)
        self.bank_labels[slots] = labels[:take]
        self.bank_ptr.copy_((self.bank_ptr + take) % self.memory_size)
        self.bank_filled = min(self.bank_filled + take, self.memory_size)
