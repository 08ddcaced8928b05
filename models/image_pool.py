"""pix2pixHD's image pool (``--pool_size``): D sees fakes drawn from a history of earlier generator outputs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from synth.core.errors import DataError


class ImagePool(nn.Module):
    """Keeps up to ``size`` past fake pairs. Per image: while the pool fills, store it and return it; then with
    probability 1/2 return a stored one (and store the new one in its place), else return the new one.

    The draws come from the pool's own CPU generator (no device sync), and the stored images, the count and the
    generator state are the module's extra state, so a resumed run continues exactly.
    """

    def __init__(self, size: int, seed: int) -> None:
        super().__init__()
        self.size = size
        self.count = 0
        self.images: torch.Tensor | None = None
        self.rng = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """The batch D should see as fake, of ``images``' shape; ``images`` are stored detached."""
        images = images.detach()
        if self.images is None:
            self.images = images.new_empty((self.size, *images.shape[1:]))
        elif self.images.device != images.device:  # restored from a checkpoint on the CPU
            self.images = self.images.to(images.device)
        if images.shape[1:] != self.images.shape[1:]:
            raise DataError(f"--pool_size needs one image size for the whole run: the pool holds "
                            f"{tuple(self.images.shape[1:])}, this batch is {tuple(images.shape[1:])}")
        picked = []
        for image in images:
            if self.count < self.size:
                self.images[self.count] = image
                self.count += 1
                picked.append(image)
            elif torch.rand((), generator=self.rng).item() > 0.5:  # a CPU draw: no device sync
                slot = int(torch.randint(self.size, (), generator=self.rng))
                picked.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                picked.append(image)
        return torch.stack(picked)

    def get_extra_state(self) -> dict[str, Any]:
        stored = self.images[: self.count].clone() if self.images is not None else torch.empty(0)
        return {"count": self.count, "images": stored, "rng": self.rng.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        stored = state["images"]
        self.images = None
        if self.count:
            self.images = stored.new_empty((self.size, *stored.shape[1:]))
            self.images[: self.count] = stored
        self.rng.set_state(state["rng"])
