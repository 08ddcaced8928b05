"""The contract between a model (which computes losses) and the trainer (which owns optimizers and updates).

A new model subclasses ``LayoutModel``, registers itself with ``@MODELS.register("name")`` and implements:

- ``__init__(opt, for_training)``: build the networks as attributes (``netG`` always; discriminators and loss
  modules only ``for_training``);
- ``encode_input(batch) -> (semantics, real_image or None)``: the dataset's dict of tensors -> network input;
- ``forward(semantics) -> image``: the generator alone, used at inference;
- ``compute_losses(batch) -> StepOutput``: named generator and discriminator loss terms for one batch, whose
  sums are what the trainer back-propagates (weights already applied), plus the generated image for visuals;
- ``networks() -> dict[str, nn.Module]``: every network to checkpoint, by name;
- ``generator_parameters(epoch)`` / ``discriminator_parameters()``: what each optimizer updates;
- optionally ``stateful_parts() -> dict[str, nn.Module]``: modules outside ``networks()`` whose state an exact
  resume needs (memory banks, EMA copies, image pools); their state dicts go into the checkpoint as ``extra``;
- optionally ``needed_files(opt, for_training)``: files named by flags that the model needs (a pretrained run's
  checkpoint, a label file); the application layer reads them and hands them to ``__init__`` as keywords
  (``SuppliedFile``), so a model never opens files itself.

Inside ``compute_losses`` call networks through ``self.run("G", x)`` rather than ``self.netG(x)``: the trainer may
install wrappers (DistributedDataParallel) with ``use_runners``. Models never own optimizers, schedules, scalers,
devices or files.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass
class StepOutput:
    """Loss terms of one batch: ``g_losses`` sum to the generator objective, ``d_losses`` to the discriminator's."""

    g_losses: dict[str, torch.Tensor]
    d_losses: dict[str, torch.Tensor]
    fake: torch.Tensor
    #: further generated images worth showing on the training page (e.g. ECGAN's edge map), detached
    visuals: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class NeededFile:
    """A file a model needs: ``kind`` says how the application reads it ('checkpoint' — a file or a run folder's
    latest.pt —, 'pseudo_labels'), ``flag`` names the option it came from, for messages."""

    kind: str
    path: str
    flag: str


@dataclass(frozen=True)
class SuppliedFile:
    """A needed file as read by the application layer: where it was, the flag that named it, what it holds."""

    path: Path
    flag: str
    content: Any


class LayoutModel(nn.Module):
    """Base class of every layout-to-image model; see the module docstring for what a subclass implements."""

    def __init__(self, opt: argparse.Namespace, for_training: bool) -> None:
        super().__init__()
        self.opt = opt
        self.for_training = for_training
        self.runners: dict[str, nn.Module] = {}  # a plain dict: wrappers are not registered as submodules

    @classmethod
    def needed_files(cls, opt: argparse.Namespace, for_training: bool) -> dict[str, NeededFile]:
        """Keyword -> file that ``__init__`` needs handed in; none by default."""
        return {}

    def use_runners(self, runners: dict[str, nn.Module]) -> None:
        """Call these wrappers (e.g. DDP) instead of the bare networks; their state dicts stay the bare ones."""
        self.runners = dict(runners)

    def run(self, name: str, *inputs: torch.Tensor):
        """Network ``name`` ('G', 'D', ...) through its wrapper when one is installed."""
        net = self.runners.get(name) or getattr(self, f"net{name}")
        return net(*inputs)

    def stateful_parts(self) -> dict[str, nn.Module]:
        """Modules besides the networks whose state a resume needs (e.g. a memory bank), by name; none by default."""
        return {}

    def extra_state(self) -> dict[str, dict[str, Any]]:
        """The state dicts of ``stateful_parts``, for the checkpoint's ``extra`` entry."""
        return {name: part.state_dict() for name, part in self.stateful_parts().items()}

    def load_extra_state(self, state: dict[str, dict[str, Any]]) -> list[str]:
        """Restore what ``extra_state`` saved (strictly); returns the parts ``state`` lacks (an older checkpoint)."""
        missing = []
        for name, part in self.stateful_parts().items():
            if name in state:
                part.load_state_dict(state[name], strict=True)
            else:
                missing.append(name)
        return missing

    def encode_input(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def compute_losses(self, batch: dict) -> StepOutput:
        raise NotImplementedError

    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def generator_parameters(self, epoch: int) -> Iterator[nn.Parameter]:
        raise NotImplementedError

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        raise NotImplementedError
