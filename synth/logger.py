"""What a person watches during training: a tqdm bar with the losses, loss_log.txt, wandb (offline by default),
TensorBoard event files with ``--tf_log`` (as pix2pixHD) and a web page of recent visuals. Values are read from
the device only at ``--print_freq``/``--display_freq``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from synth.models.base_model import StepOutput
from synth.visualize import colorize_label, save_png, tensor_to_image, write_html_page

WEB_PAGE_ENTRIES = 30


class _NoBar:
    """Stand-in for tqdm when progress bars are off."""

    def update(self, n: int) -> None:
        pass

    def set_postfix(self, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


class NullLogger:
    """What processes other than the main one log under torchrun: nothing."""

    def epoch_bar(self, epoch: int, size: int, done: int) -> _NoBar:
        return _NoBar()

    def log_losses(self, *args: Any) -> None:
        pass

    def log_visuals(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        pass


class RunLogger:
    """Losses to the bar, a text log and wandb; visuals to ``web/`` and wandb."""

    def __init__(self, opt: argparse.Namespace, run_dir: Path) -> None:
        self.opt = opt
        self.run_dir = run_dir
        self.web_dir = run_dir / "web"
        self.wandb = None if opt.no_wandb else _start_wandb(opt, run_dir)
        self.tensorboard = _start_tensorboard(run_dir) if getattr(opt, "tf_log", False) else None
        self.started = time.time()

    def epoch_bar(self, epoch: int, size: int, done: int) -> Any:
        if self.opt.no_progress:
            return _NoBar()
        return tqdm(total=size, initial=done, desc=f"epoch {epoch}", unit="img", leave=False, dynamic_ncols=True)

    def log_losses(self, out: StepOutput, epoch: int, epoch_iter: int, total_iters: int, bar: Any) -> dict:
        """Read the loss terms (the only host sync of the loop) and send them everywhere."""
        terms = {**out.g_losses, **out.d_losses}
        values = dict(zip(terms, torch.stack([t.detach().float() for t in terms.values()]).tolist(), strict=True))
        bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
        line = f"(epoch: {epoch}, iters: {epoch_iter}, time: {time.time() - self.started:.1f}s) " + " ".join(
            f"{k}: {v:.4f}" for k, v in values.items()
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "loss_log.txt", "a", encoding="utf-8") as f:
            f.write(line + "\n")
        if self.wandb is not None:
            self.wandb.log({f"loss/{k}": v for k, v in values.items()} | {"epoch": epoch}, step=total_iters)
        if self.tensorboard is not None:
            for key, value in values.items():
                self.tensorboard.add_scalar(key, value, total_iters)
            self.tensorboard.flush()
        return values

    def log_visuals(self, batch: dict, fake: torch.Tensor, epoch: int, total_iters: int,
                    extra: dict[str, torch.Tensor] | None = None) -> None:
        """Save the first sample's label / synthesized / real images (and a model's ``extra`` images, e.g. ECGAN's
        edge map) and refresh the training page."""
        if self.opt.no_html and self.wandb is None and self.tensorboard is None:
            return
        visuals = visuals_of(batch, fake, 0, self.opt.label_nc, extra)
        if not self.opt.no_html:
            stem = f"epoch{epoch:03d}_iter{total_iters:07d}"
            for kind, array in visuals.items():
                save_png(self.web_dir / "images" / f"{stem}_{kind}.png", array)
            self._write_page()
        if self.wandb is not None:
            import wandb

            images = [wandb.Image(array, caption=kind) for kind, array in visuals.items()]
            self.wandb.log({"visuals": images}, step=total_iters)
        if self.tensorboard is not None:
            for kind, array in visuals.items():
                self.tensorboard.add_image(kind, array, total_iters, dataformats="HWC")
            self.tensorboard.flush()

    def _write_page(self) -> None:
        """The page lists the newest entries first; entries are read back from the images folder."""
        stems = sorted({p.name.rsplit("_", 2)[0] for p in (self.web_dir / "images").glob("epoch*_iter*_*.png")})
        rows = []
        for stem in reversed(stems[-WEB_PAGE_ENTRIES:]):
            images = sorted((self.web_dir / "images").glob(f"{stem}_*.png"))
            rows.append((stem, [(p.stem[len(stem) + 1 :], f"images/{p.name}") for p in images]))
        write_html_page(self.web_dir / "index.html", f"Training visuals: {self.opt.name}", rows,
                        width=getattr(self.opt, "display_winsize", 256))

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None


def visuals_of(
    batch: dict, fake: torch.Tensor, i: int, label_nc: int, extra: dict[str, torch.Tensor] | None = None
) -> dict[str, np.ndarray]:
    """Sample ``i`` of a batch as pictures: input_label, synthesized_image, each ``extra`` image a model adds
    (e.g. ECGAN's edge_map) and, when present, real_image."""
    label = batch["label"][i]
    visuals = {
        "input_label": colorize_label(label[0], label_nc) if label_nc else tensor_to_image(label.float()),
        "synthesized_image": tensor_to_image(fake[i]),
    }
    for kind, images in (extra or {}).items():
        visuals[kind] = tensor_to_image(images[i])
    if "image" in batch:
        visuals["real_image"] = tensor_to_image(batch["image"][i])
    return visuals


def _start_tensorboard(run_dir: Path) -> Any:
    """A TensorBoard writer in ``run_dir/logs``, where pix2pixHD's ``--tf_log`` wrote its event files."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(run_dir / "logs"))


def _start_wandb(opt: argparse.Namespace, run_dir: Path) -> Any:
    """wandb run in ``--wandb_mode`` (offline by default; the WANDB_MODE environment variable wins)."""
    import wandb

    from synth.options import options_to_dict

    run_dir.mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=opt.wandb_project, name=opt.name, dir=str(run_dir), config=options_to_dict(opt),
        mode=os.environ.get("WANDB_MODE", opt.wandb_mode), reinit="finish_previous",
    )
