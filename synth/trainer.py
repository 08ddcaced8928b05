"""The trainer owns everything around the model's losses: data order, optimizers, learning-rate schedule, mixed
precision, checkpoints and exact resume, logging and the training web page.

The hot path (``train_step``) runs G once, D once on the fake and once on the real pair, then back-propagates the G
terms into G's parameters only and the D terms into D's only; it reads no value back to the host (a non-finite loss is
noted on the device and read when losses are printed or a checkpoint is about to be written).

Exact resume: every random draw of a step comes from torch's global generator, whose state the checkpoint holds;
the data order and augmentation come from (seed, epoch, index), and the DataLoader draws its worker seed from a
generator of its own, reseeded each epoch, so building an epoch's iterator leaves the global one untouched.
Models' state outside their networks (e.g. ECGAN's memory bank) is saved as ``extra``.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

import synth.models  # noqa: F401  (registers networks and models)
from synth.assembly import build_model
from synth.backward_step import StepInBackward, use_step_in_backward
from synth.checkpoint import (
    check_fresh_run,
    checkpoint_path,
    clear_for_fresh_run,
    load_checkpoint,
    load_net_state,
    merge_architecture,
    rng_state,
    run_dir,
    save_checkpoint,
    set_rng_state,
)
from synth.core.atomic import remove_stale_temporaries
from synth.core.errors import CheckpointError, OptionError, SynthError
from synth.data import create_dataset
from synth.distributed import init_distributed, shutdown_distributed, wrap_ddp
from synth.logger import NullLogger, RunLogger
from synth.models.base_model import StepOutput
from synth.models.pix2pixhd_model import generator_size_multiple
from synth.options import options_to_dict, save_options
from synth.runtime import autocast, cast_frozen_networks, prepare_networks, use_training_algorithm


class NonFiniteError(SynthError):
    """A loss term or a weight became NaN or infinite; training stops before anything non-finite is saved."""


class LossGuard:
    """Notes on the device the first iteration at which each loss term was not finite (no host sync per step);
    ``check`` reads that back, when losses are printed or before a save, and raises NonFiniteError."""

    NONE = 2**62  # "no bad iteration yet"; the minimum over steps (and processes) is the first bad one

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        self.first_bad: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def observe(self, terms: dict[str, torch.Tensor], iteration: int) -> None:
        """Fold this iteration's loss ``terms`` into the device-side record."""
        names = tuple(terms)
        if names != self.names:  # another set of terms (rare): settle the old record first
            self.check()
            self.names, self.first_bad = names, None
        values = torch.stack([v.detach().float().reshape(()) for v in terms.values()])
        if self.first_bad is None:
            self.first_bad = torch.full((len(names),), self.NONE, dtype=torch.long, device=values.device)
            self.values = torch.zeros_like(values)
        fresh = ~torch.isfinite(values) & (self.first_bad == self.NONE)
        self.first_bad = torch.where(fresh, iteration, self.first_bad)
        self.values = torch.where(fresh, values, self.values)

    def check(self, dist_enabled: bool = False, epoch: int | None = None) -> None:
        """Raise NonFiniteError naming the first iteration and term that were not finite (all processes agree)."""
        if self.first_bad is None:
            return
        local = self.first_bad.clone()
        first = local.clone()
        if dist_enabled:
            torch.distributed.all_reduce(first, op=torch.distributed.ReduceOp.MIN)
        first_list, local_list = first.tolist(), local.tolist()
        if min(first_list) == self.NONE:
            return
        k = first_list.index(min(first_list))
        value = f"{self.values[k].item()}" if local_list[k] == first_list[k] else "not finite (on another process)"
        where = f" (epoch {epoch})" if epoch is not None else ""
        raise NonFiniteError(f"iteration {first_list[k]}{where}: loss term {self.names[k]} is {value}; training "
                             f"stopped, the checkpoints were left as they were")


class EpochSampler(Sampler[int]):
    """Sample order fixed by (seed, epoch); this rank's share of it (every ``world_size``-th sample, padded to equal
    shares like DistributedSampler); the first ``skip`` samples of the share dropped when resuming mid-epoch.

    With ``weights`` (a model's rebalancing), an epoch is ``size`` draws with replacement in those proportions."""

    def __init__(self, size: int, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1,
                 weights: torch.Tensor | None = None) -> None:
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 1, 0
        self.weights = weights

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def order(self) -> list[int]:
        """The whole epoch's order, the same on every rank."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is not None:
            return torch.multinomial(self.weights.double(), self.size, replacement=True, generator=generator).tolist()
        if not self.shuffle:
            return list(range(self.size))
        return torch.randperm(self.size, generator=generator).tolist()

    def share_size(self) -> int:
        return -(-self.size // self.world_size)

    def share(self) -> list[int]:
        order = self.order()
        padded = order + order[: self.share_size() * self.world_size - self.size]
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.share()[self.skip :])

    def __len__(self) -> int:
        return max(self.share_size() - self.skip, 0)


def base_learning_rate(opt: argparse.Namespace, net: str = "G") -> float:
    """--lr, or --lr_D for the discriminator when given (SPADE's two time-scale rule)."""
    return opt.lr_D if net == "D" and getattr(opt, "lr_D", 0) else opt.lr


def learning_rate(opt: argparse.Namespace, epoch: int, net: str = "G") -> float:
    """The lr of 1-based ``epoch``: pix2pixHD's (constant for ``niter`` epochs, then linear decay over
    ``niter_decay``) or, with ``--lr_policy step``, GH-Feat's (x ``lr_gamma`` every ``lr_decay_epochs`` epochs)."""
    lr = base_learning_rate(opt, net)
    if getattr(opt, "lr_policy", "linear") == "step":
        return lr * opt.lr_gamma ** ((epoch - 1) // opt.lr_decay_epochs)
    if opt.niter_decay <= 0:
        return lr
    return lr * (1.0 - max(0, epoch - opt.niter - 1) / opt.niter_decay)


def make_adam(
    params: list[torch.nn.Parameter], opt: argparse.Namespace, device: torch.device, net: str = "G"
) -> torch.optim.Adam:
    """Adam with pix2pixHD's betas; the fused kernel by default (one kernel for all tensors, no per-tensor loop)."""
    impl = opt.adam_impl
    if impl == "auto":
        impl = "fused" if device.type in ("cpu", "cuda") else "foreach"
    kwargs = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
    lr = base_learning_rate(opt, net)
    return torch.optim.Adam(params, lr=lr, betas=(opt.beta1, getattr(opt, "beta2", 0.999)), **kwargs)


def detached(out: StepOutput) -> StepOutput:
    """The step's output without its autograd graph: the loop keeps the last output until the next step returns,
    and a graph retained for D's backward would hold this step's activations through the next step."""
    return dataclasses.replace(
        out, g_losses={k: v.detach() for k, v in out.g_losses.items()},
        d_losses={k: v.detach() for k, v in out.d_losses.items()}, fake=out.fake.detach(),
        visuals={k: v.detach() for k, v in out.visuals.items()})


class Trainer:
    """Builds data, model and optimizers from options (resuming when asked) and runs pix2pixHD's training loop."""

    def __init__(self, opt: argparse.Namespace) -> None:
        self.opt = opt
        self.dist = init_distributed(opt)
        self.device = torch.device(opt.device)
        self.dir = run_dir(opt)
        check_fresh_run(opt)
        if self.dist.is_main:
            self._remove_stale_temporaries()
        resume_state = self._resume_state()
        opt.size_multiple = generator_size_multiple(opt)
        self.dataset = create_dataset(opt)
        if opt.max_dataset_size:
            self.dataset.samples = self.dataset.samples[: opt.max_dataset_size]
        self.sampler = EpochSampler(
            len(self.dataset), opt.seed, not opt.serial_batches, self.dist.rank, self.dist.world_size
        )
        self.loader_generator = torch.Generator()  # worker seeds; never the global generator (see module doc)
        self.loader = DataLoader(
            self.dataset, batch_size=opt.batchSize, sampler=self.sampler, num_workers=opt.nThreads,
            pin_memory=self.device.type == "cuda", persistent_workers=False, generator=self.loader_generator,
        )
        torch.manual_seed(opt.seed)
        random.seed(opt.seed)
        self.model = build_model(opt, for_training=True).to(self.device)
        prepare_networks(self.model, opt)
        use_training_algorithm(self.model, opt)
        cast_frozen_networks(self.model, opt)  # after: kernels transformed from the fp32 weights
        self._use_sample_weights()
        if opt.load_pretrain and resume_state is None:
            self._load_pretrained_global(opt.load_pretrain)
        self.epoch, self.epoch_iter, self.total_iters, self.total_images = 1, 0, 0, 0
        self.guard = LossGuard()
        self.scalers = {
            name: torch.amp.GradScaler(self.device.type, enabled=opt.amp == "fp16") for name in ("G", "D")
        }
        self.in_backward = use_step_in_backward(opt.step_in_backward, opt.amp, self.dist.enabled)
        self.steppers: dict[str, StepInBackward] = {}
        self._build_optimizers()
        if resume_state is not None:
            self._restore(resume_state)
        self.logger = RunLogger(opt, self.dir) if self.dist.is_main else NullLogger()

    # ----- set-up -----------------------------------------------------------------------------------------
    def _remove_stale_temporaries(self) -> None:
        """Delete what saves killed between their temporary write and rename left in the run folder."""
        stale = remove_stale_temporaries(self.dir)
        if stale:
            print(f"removed {len(stale)} temporary file(s) that interrupted saves left in {self.dir}: "
                  f"{', '.join(p.name for p in stale)}", flush=True)

    def _resume_state(self) -> dict | None:
        """With --continue_train: the checkpoint to resume (architecture flags taken from it)."""
        if not self.opt.continue_train:
            return None
        path = checkpoint_path(self.opt)
        state = load_checkpoint(path)
        if "progress" not in state or "optimizers" not in state:
            raise CheckpointError(f"{path}: holds network weights only (an import?); it cannot be resumed")
        merge_architecture(self.opt, state["options"], path)
        return state

    def _use_sample_weights(self) -> None:
        """Draw epochs by the model's sampling weights when it has them (e.g. label rebalancing), and say so."""
        weights = getattr(self.model, "sample_weights", lambda dataset: None)(self.dataset)
        if weights is None:
            return
        self.sampler.weights = torch.as_tensor(weights, dtype=torch.float64)
        if self.dist.is_main:
            from synth.models.attributes import resample_report

            print(f"resampling: {resample_report(np.array(self.sampler.order()))} in epoch 1", flush=True)

    def _load_pretrained_global(self, source: str) -> None:
        """pix2pixHD's staged training: start a local enhancer from a trained global generator's checkpoint."""
        if self.opt.netG != "local":
            raise OptionError("--load_pretrain starts a local enhancer (--netG local) from a global generator")
        path = Path(source)
        path = path / "latest.pt" if path.is_dir() else path
        state = load_checkpoint(path)
        if state["options"].get("netG") != "global":
            raise CheckpointError(f"{path}: --load_pretrain needs a global generator's checkpoint")
        self.model.netG.load_global_generator(state["nets"]["G"])

    def _trainable_generator_parameters(self) -> list[torch.nn.Parameter]:
        """What G's optimizer updates this epoch (G, and E when used); the rest of the generator side is frozen so
        no gradient is computed for it."""
        chosen = {id(p) for p in self.model.generator_parameters(self.epoch)}
        discriminator_side = {id(p) for p in self.model.discriminator_parameters()}
        generator_side = [p for net in self.model.networks().values() for p in net.parameters()
                          if id(p) not in discriminator_side]
        for p in generator_side:
            p.requires_grad_(id(p) in chosen)
        return [p for p in generator_side if p.requires_grad]

    def _build_optimizers(self) -> None:
        self.d_params = list(self.model.discriminator_parameters())
        self.optimizers = {"D": make_adam(self.d_params, self.opt, self.device, "D")}
        self._attach_stepper("D")
        self._build_generator_optimizer()

    def _attach_stepper(self, name: str) -> None:
        """With --step_in_backward: hooks that step optimizer ``name`` during its backward (replacing old ones)."""
        if name in self.steppers:
            self.steppers.pop(name).close()
        if self.in_backward:
            self.steppers[name] = StepInBackward(self.optimizers[name])

    def _build_generator_optimizer(self) -> None:
        """G's Adam over this epoch's trainable parameters (fresh state, as pix2pixHD does after fixing global)."""
        self.g_params = self._trainable_generator_parameters()
        self.optimizers["G"] = make_adam(self.g_params, self.opt, self.device)
        self._attach_stepper("G")
        if self.dist.enabled:  # DDP covers the parameters that train now, so it is rebuilt with the optimizer
            runners = {name: wrap_ddp(net, self.dist, self.device) for name, net in self.model.networks().items()
                       if any(p.requires_grad for p in net.parameters())}  # frozen networks need no DDP
            self.model.use_runners(runners)

    # ----- checkpoints -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "options": options_to_dict(self.opt),
            "nets": {name: net.state_dict() for name, net in self.model.networks().items()},
            "optimizers": {name: o.state_dict() for name, o in self.optimizers.items()},
            "scalers": {name: s.state_dict() for name, s in self.scalers.items()},
            "progress": {
                "epoch": self.epoch, "epoch_iter": self.epoch_iter,
                "total_iters": self.total_iters, "total_images": self.total_images,
            },
            "rng": rng_state(),
            "extra": self.model.extra_state(),
        }

    def _restore(self, state: dict) -> None:
        path = checkpoint_path(self.opt)
        for name, net in self.model.networks().items():
            if name not in state["nets"]:
                raise CheckpointError(f"{path}: has no network {name}")
            load_net_state(net, state["nets"][name], name, path)
        progress = state["progress"]
        self.epoch, self.epoch_iter = progress["epoch"], progress["epoch_iter"]
        self.total_iters, self.total_images = progress["total_iters"], progress["total_images"]
        self._build_generator_optimizer()  # the parameter set depends on the epoch (--niter_fix_global)
        try:
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{path}: optimizer state does not fit this model ({exc})") from None
        for name, scaler in self.scalers.items():
            if state.get("scalers", {}).get(name):
                scaler.load_state_dict(state["scalers"][name])
        for name in self.model.load_extra_state(state.get("extra", {})):
            print(f"note: {path} holds no saved {name} (written before it was checkpointed); it restarts empty, "
                  f"so this resume is not exact", file=sys.stderr, flush=True)
        set_rng_state(state["rng"])

    def save(self, which: str | int) -> Path:
        """Write latest.pt or epoch_NNN.pt atomically (the main process only), never a non-finite model: every
        process checks the losses since the last check, and its weights, first."""
        self.guard.check(self.dist.enabled, self.epoch)
        self._check_weights()
        path = checkpoint_path(self.opt, which)
        if self.dist.is_main:
            save_checkpoint(path, self.state_dict())
        return path

    def _check_weights(self) -> None:
        """NonFiniteError if a network's weights are not finite (one host sync, at save time only)."""
        for name, net in self.model.networks().items():
            params = [p.detach() for p in net.parameters()]
            if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
                raise NonFiniteError(f"iteration {self.total_iters} (epoch {self.epoch}): the weights of network "
                                     f"{name} are not finite; training stopped, the checkpoints were left as they were")

    def _snapshot_due(self, epoch: int) -> bool:
        """Whether epoch_NNN.pt is written at the end of ``epoch`` (every --save_epoch_freq epochs, and the last)."""
        every = self.opt.save_epoch_freq
        return (every > 0 and epoch % every == 0) or epoch == self.last_epoch()

    def _write_skipped_snapshot(self) -> None:
        """A run killed between latest.pt and epoch_NNN.pt at an epoch end lacks that snapshot; latest.pt holds
        exactly the state it would have had, so write it now and say so."""
        done = self.epoch - 1
        if self.epoch_iter or done < 1 or not self._snapshot_due(done):
            return
        path = checkpoint_path(self.opt, done)
        if self.dist.is_main and not path.exists():
            self.save(done)
            print(f"wrote {path}, the epoch snapshot an interrupted save had skipped", flush=True)

    # ----- the loop --------------------------------------------------------------------------------------
    def train_step(self, batch: dict) -> StepOutput:
        """One pix2pixHD iteration: G and D updated from the same forward pass, as in the reference code."""
        with autocast(self.opt):
            out = self.model.compute_losses(batch)
        loss_g = sum(out.g_losses.values())
        loss_d = sum(out.d_losses.values())
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        self._backward("G", loss_g, self.g_params, retain_graph=True)
        self._backward("D", loss_d, self.d_params)
        for name, optimizer in self.optimizers.items():
            if name not in self.steppers:
                self.scalers[name].step(optimizer)
                self.scalers[name].update()
        return detached(out)

    def _backward(self, name: str, loss: torch.Tensor, params: list[torch.nn.Parameter], **kwargs) -> None:
        """Back-propagate ``loss`` into ``params``; with a stepper, each is updated as its gradient completes."""
        stepper = self.steppers.get(name)
        if stepper is not None:
            stepper.armed = True
        try:
            self.scalers[name].scale(loss).backward(inputs=params, **kwargs)
        finally:
            if stepper is not None:
                stepper.armed = False

    def _set_learning_rate(self) -> None:
        for name, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(self.opt, self.epoch, name)

    def last_epoch(self) -> int:
        return self.opt.niter + self.opt.niter_decay

    def train(self) -> Path:
        """Run (or continue) the schedule; returns the path of the last checkpoint written."""
        opt = self.opt
        if self.dist.is_main:
            clear_for_fresh_run(opt)
            save_options(opt, self.dir / "opt.yaml")
        last = checkpoint_path(opt, "latest")
        try:
            if opt.continue_train:
                self._write_skipped_snapshot()
            while self.epoch <= self.last_epoch():
                if self._run_epoch():
                    return self.save("latest")
                self.epoch_iter = 0
                self.epoch += 1
                if self.epoch - 1 == opt.niter_fix_global and opt.netG == "local":
                    self._build_generator_optimizer()  # pix2pixHD: from now on the global generator trains as well
                last = self.save("latest")
                if self._snapshot_due(self.epoch - 1):
                    self.save(self.epoch - 1)
        finally:
            self.logger.close()
        return last

    def _run_epoch(self) -> bool:
        """Train the rest of the current epoch; True when --max_iters stopped the run."""
        opt = self.opt
        self._set_learning_rate()
        self.dataset.set_epoch(self.epoch)
        self.loader_generator.manual_seed(opt.seed * 1_000_003 + self.epoch)
        self.sampler.set_epoch(self.epoch, skip=self.epoch_iter // self.dist.world_size)
        bar = self.logger.epoch_bar(self.epoch, len(self.dataset), self.epoch_iter)
        for batch in self.loader:
            out = self.train_step(batch)
            self.guard.observe({**out.g_losses, **out.d_losses}, self.total_iters + 1)
            n = batch["label"].shape[0] * self.dist.world_size  # images of the global batch
            self.epoch_iter += n
            self.total_images += n
            self.total_iters += 1
            bar.update(n)
            if self._crossed(opt.print_freq, n):
                self.guard.check(self.dist.enabled, self.epoch)  # the losses are read back here anyway
                self.logger.log_losses(out, self.epoch, self.epoch_iter, self.total_iters, bar)
            if self._crossed(opt.display_freq, n):
                self.logger.log_visuals(batch, out.fake, self.epoch, self.total_iters, out.visuals)
            if self._crossed(opt.save_latest_freq, n):
                self.save("latest")
            if opt.max_iters and self.total_iters >= opt.max_iters:
                bar.close()
                return True
        bar.close()
        return False

    def _crossed(self, every: int, batch: int) -> bool:
        """True when the image counter passed a multiple of ``every`` in this iteration."""
        return every > 0 and self.total_images // every > (self.total_images - batch) // every


def train(opt: argparse.Namespace) -> Path:
    """Train (or continue) the run described by ``opt``; returns the last checkpoint. Under torchrun every process
    calls this; they leave the process group together at the end."""
    try:
        return Trainer(opt).train()
    finally:
        shutdown_distributed()
