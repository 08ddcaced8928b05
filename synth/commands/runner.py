"""What every command shares: one line and exit status 2 for a user error, and loading a trained run's model."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from synth.allocator import tune_malloc
from synth.core.errors import OptionError, SynthError


def run_cli(body: Callable[[], int | None]) -> int:
    """Run ``body`` (malloc tuned first, see synth.allocator); user errors print ``error: <message>`` and return
    2; Ctrl-C returns 130."""
    tune_malloc()
    try:
        return int(body() or 0)
    except SynthError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def one_line(exc: Exception) -> str:
    """The message of ``exc``; for an error re-raised from a DataLoader worker, the original message only."""
    text = str(exc).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
        return last[len(prefix) :] if last.startswith(prefix) else last
    return text.splitlines()[0] if text else type(exc).__name__


def arguments(argv: Sequence[str] | None) -> list[str]:
    """``argv`` or, for a console script, the process's own arguments."""
    return list(sys.argv[1:] if argv is None else argv)


class StrictParser(argparse.ArgumentParser):
    """An argument parser whose errors are OptionErrors (one line, exit 2) instead of argparse's own exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise OptionError(message)


def refuse_existing(path, overwrite: bool, what: str, elsewhere: str) -> None:
    """OptionError when ``path`` (an output that holds work) exists and --overwrite was not given; ``elsewhere``
    names the flag that writes another file instead."""
    from pathlib import Path

    if Path(path).exists() and not overwrite:
        raise OptionError(f"{path}: {what} exists; pass --overwrite to replace it or {elsewhere} to write another")


def load_run(rest: list[str], needs: str, kinds: str):
    """(model, options) of ``--name`` from test flags ``rest``; OptionError unless the model has method ``needs``
    (``kinds`` names the models that do, for the message)."""
    from synth.inference import load_generator
    from synth.options import parse_test_options

    opt = parse_test_options(rest)
    model = load_generator(opt)
    if not hasattr(model, needs):
        raise OptionError(f"{opt.name}: not a {kinds} run (--model {opt.model})")
    return model, opt


def split_dataset(opt: argparse.Namespace, phase: str):
    """The dataset of split ``phase`` with its real images (sizes fitted to the run's generator)."""
    from synth.data import create_dataset
    from synth.models.pix2pixhd_model import generator_size_multiple

    opt.phase = phase
    opt.size_multiple = generator_size_multiple(opt)
    dataset = create_dataset(opt)
    if not dataset.has_images:
        raise OptionError(f"{opt.dataroot}: phase '{phase}' has no real images to encode")
    return dataset


def sample_batch(dataset, key: str) -> dict:
    """The one-image batch of the sample named ``key``."""
    from torch.utils.data import default_collate

    keys = [s.key for s in dataset.samples]
    if key not in keys:
        raise OptionError(f"no sample '{key}' (e.g. {', '.join(keys[:3])})")
    return default_collate([dataset[keys.index(key)]])
