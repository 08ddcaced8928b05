"""Option parsing: built-in defaults < ``--config`` YAML < command line, then checks and derived values.

The merged options are an ``argparse.Namespace``; ``opt.explicit`` holds the flags typed on the command line
(or set in the YAML), so a checkpoint's architecture can be compared with what the user actually asked for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from synth.core.atomic import atomic_write_text
from synth.core.errors import OptionError
from synth.options.flags import add_base_options, add_safety_options, add_test_options, add_train_options
from synth.options.validate import check_sizes, validate_options

#: Keys that are derived here (or only point at a config file) and are not saved with the options.
DERIVED_KEYS = ("isTrain", "explicit", "size_multiple", "config", "need_feature_maps", "overwrite")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors become OptionError (one line, no usage dump, no SystemExit from library code)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise OptionError(message)


def build_parser(is_train: bool) -> argparse.ArgumentParser:
    """The full flag set for training (``is_train``) or inference."""
    parser = _Parser(
        prog="synth-train" if is_train else "synth-test",
        description="Train a layout-to-image model." if is_train else "Synthesize images from label maps.",
    )
    add_base_options(parser)
    (add_train_options if is_train else add_test_options)(parser)
    add_safety_options(parser, is_train)
    return parser


def _flag_names(argv: list[str]) -> set[str]:
    """Destinations of the flags present in argv (``--ngf 32`` and ``--ngf=32`` alike)."""
    return {tok[2:].split("=", 1)[0] for tok in argv if tok.startswith("--")}


def load_yaml_config(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Read a YAML config (safe_load) whose keys must all be flags of ``parser``; values typed like the flag."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as exc:
        raise OptionError(f"{path}: cannot read config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise OptionError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise OptionError(f"{path}: a config file must be a mapping of flag names to values")
    actions = {a.dest: a for a in parser._actions}
    values = {}
    for key, value in data.items():
        action = actions.get(key)
        if action is None or key in ("help", "config"):
            raise OptionError(f"{path}: '{key}' is not a flag of {parser.prog}")
        values[key] = _typed_value(path, action, value)
    return values


def _typed_value(path: str, action: argparse.Action, value: Any) -> Any:
    """Convert a YAML value as argparse would convert the flag's text, and check its choices; a value argparse
    could not have produced (null for a flag with a value, 1.9 for an integer, a list for a single value) is
    refused, never truncated."""
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise OptionError(f"{path}: '{action.dest}' takes true or false, not {value!r}")
        return value
    if value is None:
        if action.default is not None:
            raise OptionError(f"{path}: '{action.dest}' needs a value (null is only allowed for flags without one)")
        return value
    if action.nargs in ("*", "+"):
        if not isinstance(value, list):
            raise OptionError(f"{path}: '{action.dest}' takes a list, not {value!r}")
        return [_typed_scalar(path, action, v) for v in value]
    return _typed_scalar(path, action, value)


def _typed_scalar(path: str, action: argparse.Action, value: Any) -> Any:
    """One YAML scalar converted by the flag's type: bools, lists, mappings and non-integral numbers refused."""
    kind = action.type or str
    if isinstance(value, bool | list | dict) or value is None:
        raise OptionError(f"{path}: '{action.dest}' must be {kind.__name__}, not {value!r}")
    if kind is int and isinstance(value, float):
        raise OptionError(f"{path}: '{action.dest}' must be int, not {value!r} (no rounding)")
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise OptionError(f"{path}: '{action.dest}' must be {kind.__name__}, not {value!r}") from None
    if action.choices is not None and value not in action.choices:
        raise OptionError(f"{path}: '{action.dest}' must be one of {', '.join(map(str, action.choices))}")
    return value


def add_model_options(parser: argparse.ArgumentParser, argv: list[str], is_train: bool) -> None:
    """SPADE's per-model hook: the model named by --model (command line, else the config file) may add flags and
    set defaults through a static ``add_options(parser, is_train)``."""
    first, _ = parser.parse_known_args(argv)
    name = first.model
    if first.config and "--model" not in argv and not any(tok.startswith("--model=") for tok in argv):
        try:
            with open(first.config, encoding="utf-8") as f:
                data = yaml.safe_load(f)
            name = data.get("model", name) if isinstance(data, dict) else name
        except (OSError, yaml.YAMLError):
            pass  # reported with a clear message when the config is read for real
    import synth.models  # noqa: F401  (fills the registry)
    from synth.models.registry import MODELS

    hook = getattr(MODELS.get(name), "add_options", None)
    if hook is not None:
        hook(parser, is_train)


def parse_options(argv: list[str] | None, is_train: bool) -> argparse.Namespace:
    """Parse argv with YAML layering and checks; sets ``isTrain`` and ``explicit``."""
    argv = list(argv) if argv is not None else []
    parser = build_parser(is_train)
    refuse_extra_dashes(argv, parser)
    add_model_options(parser, argv, is_train)
    first = parser.parse_args(argv)
    explicit = _flag_names(argv)
    if first.config:
        config = load_yaml_config(first.config, parser)
        parser.set_defaults(**config)
        explicit |= set(config)
    opt = parser.parse_args(argv)
    opt.isTrain = is_train
    opt.explicit = sorted(explicit - {"config"})
    _check_and_derive(opt, argv)
    return opt


def refuse_extra_dashes(argv: list[str], parser: argparse.ArgumentParser) -> None:
    """A flag typed with three or more dashes (pix2pixHD's own test_1024p_feat.sh has ``---netG``) is one line
    naming the flag it resembles, never folded silently nor argparse's "unrecognized arguments: ---netG local"."""
    for token in argv:
        if not token.startswith("---") or token.lstrip("-") == "":
            continue
        flag = token.split("=", 1)[0]
        meant = "--" + flag.lstrip("-")
        hint = f" (did you mean {meant}?)" if meant in parser._option_string_actions else ""
        raise OptionError(f"unknown flag {flag}{hint}")


def _check_and_derive(opt: argparse.Namespace, argv: list[str]) -> None:
    """Range checks that argparse cannot express, and pix2pixHD spellings folded into ours."""
    validate_options(opt)
    if opt.instance_feat and opt.label_feat:
        raise OptionError("--instance_feat and --label_feat exclude each other; choose one")
    if opt.instance_feat and opt.no_instance:
        raise OptionError("--instance_feat needs instance maps; drop --no_instance or use --label_feat")
    if opt.load_features and not (opt.instance_feat or opt.label_feat):
        raise OptionError("--load_features gives G precomputed features: add --instance_feat (or --label_feat)")
    opt.need_feature_maps = bool(opt.isTrain and opt.load_features)  # training reads DATAROOT/PHASE_feat
    if opt.label_nc == 0 and opt.contain_dontcare_label:
        raise OptionError("--contain_dontcare_label needs --label_nc > 0")
    if opt.isTrain:
        if opt.no_lsgan:
            opt.gan_mode = "vanilla"
        if opt.niter + opt.niter_decay < 1:
            raise OptionError("--niter + --niter_decay must be at least 1 epoch")
        if not opt.continue_train:  # a resumed run takes its architecture from the checkpoint
            from synth.models.pix2pixhd_model import generator_size_multiple

            check_sizes(opt, generator_size_multiple(opt))
    _fold_pix2pixhd_flags(opt, argv)
    opt.device = resolve_device_name(opt.device, opt.gpu_ids)
    if opt.amp == "auto":
        opt.amp, reason = resolve_auto_amp(opt.device)
        print(f"--amp auto: {opt.amp} ({reason})", file=sys.stderr)
    if opt.amp == "fp16" and not opt.device.startswith("cuda"):
        by_data_type = "data_type" in opt.explicit and opt.data_type == 16
        typed = "--fp16" if opt.fp16 else "--data_type 16" if by_data_type else "--amp fp16"
        raise OptionError(f"{typed} needs a CUDA device (pix2pixHD's fp16 is CUDA-only); on the CPU use --amp bf16 "
                          "(fast only with native bf16)")
    if getattr(opt, "conv_algorithm", "auto") == "winograd" and opt.device != "cpu":
        raise OptionError(f"--conv_algorithm winograd runs on the CPU only, not on {opt.device} (cuDNN chooses its "
                          "own algorithms, Winograd among them): use auto or direct")
    if opt.amp == "bf16" and opt.device == "cpu" and not cpu_has_native_bf16():
        print("warning: this CPU has no native bf16 (AVX512-BF16/AMX): --amp bf16 will be much slower than fp32",
              file=sys.stderr)


def resolve_auto_amp(device: str) -> tuple[str, str]:
    """(precision, why) for ``--amp auto``: bf16 where ``device`` computes bf16 natively, none (fp32) elsewhere."""
    import torch

    if device.startswith("cuda"):
        if torch.cuda.is_bf16_supported():
            return "bf16", f"{torch.cuda.get_device_name(torch.device(device))} has native bf16"
        return "none", "this GPU has no native bf16"
    if cpu_has_native_bf16():
        return "bf16", "this CPU has native bf16 (AVX512-BF16/AMX)"
    return "none", "this CPU has no native bf16 (AVX512-BF16/AMX), fp32 is faster"


def _fold_pix2pixhd_flags(opt: argparse.Namespace, argv: list[str]) -> None:
    """pix2pixHD spellings folded into ours (--fp16, --data_type, --local_rank, --debug, --ntest, --engine,
    several --gpu_ids), and --use_dropout / --pool_size refused where they cannot apply, each in one line."""
    import os

    data_type = opt.data_type if "data_type" in getattr(opt, "explicit", ()) else None
    if getattr(opt, "fp16", False) or data_type == 16:
        opt.amp = "fp16"
    elif data_type == 32:
        opt.amp = "none"
    elif data_type == 8:
        raise OptionError("--data_type 8 (int8) is not supported for training or inference; use --data_type 16 "
                          "(= --amp fp16, CUDA) or --amp bf16")
    if getattr(opt, "local_rank", None) is not None:
        os.environ.setdefault("LOCAL_RANK", str(opt.local_rank))
    if getattr(opt, "use_dropout", False) and (opt.model != "pix2pixHD" or opt.netG not in ("global", "local")):
        raise OptionError(f"--use_dropout applies to pix2pixHD's global and local generators, not --model "
                          f"{opt.model} --netG {opt.netG}; drop it")
    if getattr(opt, "pool_size", 0) > 0:
        if opt.model != "pix2pixHD":
            raise OptionError(f"--pool_size is pix2pixHD's image pool for its D; --model {opt.model} has none")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise OptionError("--pool_size under torchrun is not supported (as in pix2pixHD): each process would "
                              "keep its own pool and a checkpoint holds one; drop it or train on one process")
    if getattr(opt, "engine", None):
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            raise OptionError("--engine needs TensorRT, which is not installed; run synth-test on the checkpoint "
                              "(or export with synth-export-onnx and build an engine elsewhere)") from None
        raise OptionError("--engine (TensorRT inference) is not wired into test.py yet; run synth-test")
    if opt.isTrain and getattr(opt, "debug", False):
        opt.max_dataset_size, opt.print_freq, opt.display_freq = 2, 1, 1  # pix2pixHD's debug settings
    if not opt.isTrain and getattr(opt, "ntest", None) is not None:
        opt.how_many = min(opt.how_many, opt.ntest) if opt.how_many > 0 else opt.ntest
    ids = [i.strip() for i in (opt.gpu_ids or "").split(",") if i.strip() not in ("", "-1")]
    if len(ids) > 1:
        import shlex

        kept = without_flags(argv, ("--gpu_ids", "--local_rank", "--local-rank"))  # torchrun sets the rank
        rest = " ".join(shlex.quote(a) for a in kept) or "..."
        raise OptionError(f"--gpu_ids {opt.gpu_ids}: pix2pixHD used DataParallel; run one process per GPU with "
                          f"CUDA_VISIBLE_DEVICES={','.join(ids)} torchrun --nproc_per_node {len(ids)} train.py "
                          f"{rest} (--batchSize is per process)")


def without_flags(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """``argv`` less each ``FLAG VALUE`` / ``FLAG=VALUE`` of ``flags`` (a command line the user can paste back)."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token in flags:
            skip = True
        elif not token.startswith(tuple(f + "=" for f in flags)):
            out.append(token)
    return out


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions natively here (else they are emulated, many times slower)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_device_name(device: str, gpu_ids: str | None) -> str:
    """'auto' -> cuda when available else cpu; pix2pixHD's ``--gpu_ids -1`` means the CPU."""
    import torch

    if gpu_ids is not None:
        first = gpu_ids.split(",")[0].strip()
        device = "cpu" if first in ("", "-1") else f"cuda:{first}"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError(f"--device {device} asked for, but no CUDA device is available (use --device cpu)")
    if not (device == "cpu" or device.startswith("cuda")):
        raise OptionError(f"--device must be auto, cpu, cuda or cuda:N, not '{device}'")
    return device


def options_to_dict(opt: argparse.Namespace) -> dict[str, Any]:
    """Plain, YAML- and checkpoint-safe dict of the flags (derived keys dropped)."""
    return {k: v for k, v in sorted(vars(opt).items()) if k not in DERIVED_KEYS}


def save_options(opt: argparse.Namespace, path: str | Path) -> None:
    """Write the effective options as YAML, atomically (a crash never leaves half a file)."""
    atomic_write_text(path, yaml.safe_dump(options_to_dict(opt), sort_keys=True))


def parse_train_options(argv: list[str] | None = None) -> argparse.Namespace:
    """Options for ``train.py``."""
    return parse_options(argv, is_train=True)


def parse_test_options(argv: list[str] | None = None) -> argparse.Namespace:
    """Options for ``test.py``."""
    return parse_options(argv, is_train=False)
