"""Seconds per training iteration of pix2pixHD's reference config on the CPU, per optimizer / precision config.

Reference config (pix2pixHD's Cityscapes global generator): batch 1, label_nc 35, instance maps, global G (ngf 64,
4 down-samplings, 9 residual blocks), multi-scale D (num_D 2, n_layers_D 3, ndf 64), GAN feature matching and
the VGG19 perceptual loss. ``Trainer.train_step`` is timed on one fixed batch taken from ``Trainer.loader``
(data loading is not timed). Each configuration runs in a fresh child process so its peak RSS is its own.

VGG19's ImageNet weights cannot be downloaded here, so torchvision's VGG19 with random weights is saved to a
temporary file and passed as ``--vgg_weights``: the values do not change the speed.

    python bench/train_step.py                                   # defaults: 256x128 and 512x256, all configs
    python bench/train_step.py --sizes 512x256 --configs fp32-plain,bf16-fused --iters 3 --json out.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

#: Configuration name -> extra training flags. "fp32-plain" is the baseline (pix2pixHD uses the plain Adam loop).
CONFIGS: dict[str, list[str]] = {
    "fp32-plain": ["--adam_impl", "plain", "--amp", "none"],
    "fp32-fused": ["--adam_impl", "fused", "--amp", "none"],
    "bf16-fused": ["--adam_impl", "fused", "--amp", "bf16"],
}
#: Added when the options have these flags (they are optional speed features of the trainer).
OPTIONAL_CONFIGS: dict[str, tuple[str, list[str]]] = {
    "fp32-fused-cl": ("channels_last", ["--adam_impl", "fused", "--amp", "none", "--channels_last"]),
    "bf16-fused-cl": ("channels_last", ["--adam_impl", "fused", "--amp", "bf16", "--channels_last"]),
    "fp32-fused-compile": ("compile", ["--adam_impl", "fused", "--amp", "none", "--compile"]),
    # the classic order (all gradients, then the step) against the default --step_in_backward auto (on here)
    "fp32-fused-step-after": ("step_in_backward", ["--adam_impl", "fused", "--amp", "none",
                                                   "--step_in_backward", "off"]),
    "bf16-fused-step-after": ("step_in_backward", ["--adam_impl", "fused", "--amp", "bf16",
                                                   "--step_in_backward", "off"]),
    # the res blocks trained by differentiable Winograd: auto chooses it on the CPU (without AMX) where the res
    # blocks' maps are 16x32 or more, so fp32-fused and bf16-fused run it at 512x256, *-winograd at every size,
    # *-direct never
    "fp32-fused-winograd": ("conv_algorithm", ["--adam_impl", "fused", "--amp", "none", "--conv_algorithm",
                                               "winograd"]),
    "bf16-fused-winograd": ("conv_algorithm", ["--adam_impl", "fused", "--amp", "bf16", "--conv_algorithm",
                                               "winograd"]),
    "fp32-fused-direct": ("conv_algorithm", ["--adam_impl", "fused", "--amp", "none", "--conv_algorithm",
                                             "direct"]),
    "bf16-fused-direct": ("conv_algorithm", ["--adam_impl", "fused", "--amp", "bf16", "--conv_algorithm",
                                             "direct"]),
}
#: Included in the default run (compile is left out by default: its first steps take minutes on 2 cores).
DEFAULT_OPTIONAL = ("fp32-fused-cl", "bf16-fused-cl")
BASELINE = "fp32-plain"
VGG_FILE = "vgg19_random_weights.pth"
DEFAULT_SIZES = "256x128,512x256"
#: (warm-up, timed) iterations per size; sizes not listed use the last entry.
DEFAULT_ITERS = {(256, 128): (1, 5), (512, 256): (1, 4)}


def available_configs() -> dict[str, list[str]]:
    from synth.options.parse import build_parser

    dests = {action.dest for action in build_parser(is_train=True)._actions}
    configs = dict(CONFIGS)
    for name, (flag, flags) in OPTIONAL_CONFIGS.items():
        if flag in dests:
            configs[name] = flags
    return configs


def warmed_trainer(work: Path, size: str, config: str, warmup: int):
    """A trainer of the reference config ``config`` on fresh random data of ``size`` under ``work``, in train mode,
    with one batch loaded, after ``warmup`` steps: (trainer, batch), for the scripts that look inside a step."""
    from synth.trainer import Trainer

    width, height = common.parse_size(size)
    common.save_random_vgg19(work / VGG_FILE)
    root = common.make_dataset(work / "data", width, height, n=2)
    opt = common.train_options(root, work / "runs", ["--vgg_weights", str(work / VGG_FILE),
                                                     *available_configs()[config]])
    trainer = Trainer(opt)
    batch = next(iter(trainer.loader))
    trainer.model.train()
    for _ in range(warmup):
        trainer.train_step(batch)
    return trainer, batch


def iterations(size: tuple[int, int], args: argparse.Namespace) -> tuple[int, int]:
    warmup, iters = DEFAULT_ITERS.get(size, (1, 4))
    return (args.warmup if args.warmup >= 0 else warmup), (args.iters or iters)


def run_one(args: argparse.Namespace) -> dict:
    """Child mode: build the trainer for one (size, config), time train_step, report JSON."""
    import torch

    from synth.allocator import tune_malloc

    malloc = tune_malloc()  # as the console commands do; SYNTH_MALLOC=system measures glibc's defaults
    if args.threads:
        torch.set_num_threads(args.threads)
    from synth.trainer import Trainer

    width, height = common.parse_size(args.size)
    warmup, iters = iterations((width, height), args)
    extra = available_configs()[args.config]
    work = Path(args.workdir)
    with common.temp_dir("synth-bench-run-") as runs:
        root = work / f"data_{width}x{height}"
        opt = common.train_options(root, Path(runs), ["--vgg_weights", str(work / VGG_FILE), *extra])
        trainer = Trainer(opt)
        batch = next(iter(trainer.loader))
        assert tuple(batch["label"].shape[-2:]) == (height, width), batch["label"].shape
        trainer.model.train()
        timing = common.time_callable(lambda: trainer.train_step(batch), warmup, iters)
        out = trainer.train_step(batch)
        losses = {k: float(v.detach().float()) for k, v in {**out.g_losses, **out.d_losses}.items()}
    finite = all(v == v and abs(v) != float("inf") for v in losses.values())
    return {
        "size": args.size, "config": args.config, "malloc": malloc, "flags": extra, **timing,
        "peak_rss_mb": common.peak_rss_mb(),
        "threads": torch.get_num_threads(), "losses_finite": finite, "losses": losses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    configs = available_configs()
    default_configs = [*CONFIGS, *(c for c in DEFAULT_OPTIONAL if c in configs)]
    native_bf16 = common.native_bf16()
    if not native_bf16:  # without native bf16 kernels one bf16 step takes minutes: opt-in only (--configs)
        default_configs = [c for c in default_configs if not c.startswith("bf16")]
    common.add_common_flags(parser, DEFAULT_SIZES, ",".join(default_configs))
    args = parser.parse_args()
    if args.one:
        common.emit_result(run_one(args))
        return

    names, sizes = common.chosen_configs_and_sizes(parser, args, configs)
    info = common.machine_info()
    common.print_machine(info)
    info["native_bf16"] = native_bf16
    info["bf16_probe"] = common.bf16_conv_probe()
    common.print_bf16_probe(info["bf16_probe"])
    if not native_bf16:
        print("this CPU has no native bf16 kernels (oneDNN): bf16 configs are left out of the default run; "
              "ask for them with --configs (expect minutes per step)")
    print("train step: batch 1, label_nc 35, instances, global G (ngf 64, 4 down, 9 blocks), num_D 2, n_layers_D 3,")
    print("ndf 64, feature matching + VGG loss (VGG19 with RANDOM weights: ImageNet weights cannot be downloaded")
    print("here; values do not affect speed). One fixed batch, data loading not timed, fresh process per config.")
    results = []
    with common.temp_dir("synth-bench-") as work:
        work = Path(work)
        common.save_random_vgg19(work / VGG_FILE)
        for size in sizes:
            width, height = common.parse_size(size)
            common.make_dataset(work / f"data_{width}x{height}", width, height, n=2)
            warmup, iters = iterations((width, height), args)
            for name in names:
                child_args = ["--size", size, "--config", name, "--warmup", str(warmup), "--iters", str(iters),
                              "--workdir", str(work)]
                if args.threads:
                    child_args += ["--threads", str(args.threads)]
                result = common.run_child(Path(__file__), child_args)
                result.setdefault("size", size)
                result.setdefault("config", name)
                results.append(result)
                status = result.get("error") or f"{result['median_s']:.3f} s/iter ({warmup}+{iters} iters)"
                print(f"  {size} {name}: {status}", flush=True)
                common.save_json(args.json, {"benchmark": "train_step", "machine": info, "argv": sys.argv[1:],
                                             "results": results, "partial": True}, quiet=True)
    common.print_load_end(info)

    rows = []
    for result in results:
        base = next((r for r in results if r["size"] == result["size"] and r["config"] == BASELINE), None)
        first = "-" if "error" in result else f"{result['warmup_s'][0]:.2f}" if result["warmup_s"] else "-"
        rows.append([
            result["size"], result["config"], common.fmt_s(result), common.fmt_ratio(result, base), first,
            common.fmt_mb(result),
        ])
    print()
    print(common.markdown_table(
        ["size (WxH)", "config", "median s/iter", f"speed-up vs {BASELINE}", "first step s", "peak RSS MiB"], rows
    ))
    common.save_json(args.json, {"benchmark": "train_step", "machine": info, "argv": sys.argv[1:], "results": results})


if __name__ == "__main__":
    main()
