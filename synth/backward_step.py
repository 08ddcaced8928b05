"""Optimizer steps taken inside backward: each parameter is updated as soon as its gradient is complete, and that
gradient is freed at once, so a step never holds all of a network's gradients at the same time (pix2pixHD's
global G has 182.5 M parameters: 730 MB of fp32 gradients).

The update is the one ``optimizer.step()`` makes after backward: Adam's update of a tensor reads only that
tensor's gradient and state, and the autograd engine calls a parameter's post-accumulate-grad hook once per
backward, after every use of the parameter has contributed. It cannot apply where something must see all
gradients before any step: fp16's GradScaler (the overflow check) and DDP (gradients are averaged after they are
accumulated).
"""

from __future__ import annotations

import torch

from synth.core.errors import OptionError


def use_step_in_backward(choice: str, amp: str, distributed: bool) -> bool:
    """Resolve ``--step_in_backward auto|on|off``: auto is on unless fp16 or DDP rules it out; on there is an error."""
    blocker = "--amp fp16 (the loss scaler checks all gradients before any step)" if amp == "fp16" else (
        "DDP (gradients are averaged across processes after backward)" if distributed else "")
    if choice == "on" and blocker:
        raise OptionError(f"--step_in_backward on cannot apply with {blocker}; use --step_in_backward off or auto")
    return choice == "on" or (choice == "auto" and not blocker)


class StepInBackward:
    """Steps ``optimizer`` parameter by parameter from post-accumulate-grad hooks while ``armed``.

    The optimizer itself keeps the state (its ``state`` and ``param_groups`` are read at every step, so
    ``load_state_dict`` and learning-rate changes apply); a one-parameter optimizer of the same class per tensor
    runs the update on that shared state. ``close`` removes the hooks (the optimizer is being replaced)."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.armed = False
        self._single: dict[torch.Tensor, tuple[int, torch.optim.Optimizer]] = {}
        self._handles = []
        for index, group in enumerate(optimizer.param_groups):
            for p in group["params"]:
                self._single[p] = (index, type(optimizer)([p], **optimizer.defaults))
                self._handles.append(p.register_post_accumulate_grad_hook(self._step))

    def _step(self, p: torch.Tensor) -> None:
        if not self.armed:
            return
        index, single = self._single[p]
        group = self.optimizer.param_groups[index]
        single.param_groups[0].update((k, v) for k, v in group.items() if k != "params")
        single.state = self.optimizer.state
        single.step()
        p.grad = None

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
