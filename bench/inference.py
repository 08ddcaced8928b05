"""Seconds per image of pix2pixHD's global generator alone (inference), fp32 vs bf16 autocast, on the CPU.

Generator as in pix2pixHD's Cityscapes config: label_nc 35 + instance boundaries (36 input channels), ngf 64,
4 down-samplings, 9 residual blocks (random weights: the speed does not depend on them). The input is built with
``model.encode_input`` from a synthetic ``{"label", "inst"}`` batch (one-hot + boundaries, not timed); the timed
call is ``model(semantics)`` in eval mode under ``torch.inference_mode()``. Each (size, config) runs in a fresh
child process so its peak RSS is its own.

    python bench/inference.py                                   # defaults: 256x128, 512x256, 1024x512
    python bench/inference.py --sizes 1024x512 --configs fp32,bf16 --iters 3 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

#: Configuration name -> (extra flags, autocast dtype name or None). "fp32" is the baseline.
CONFIGS: dict[str, tuple[list[str], str | None]] = {
    "fp32": ([], None),
    "bf16": (["--amp", "bf16"], "bfloat16"),  # as test.py and the API: bf16 weights cast once at load (+ Winograd)
    "bf16-fp32-weights": (["--amp", "bf16"], "bfloat16"),  # autocast over fp32 weights: casts G's at every call
}
#: Configurations that keep fp32 weights under autocast (what synth did before it cast them once at load).
KEEP_FP32_WEIGHTS = ("bf16-fp32-weights",)
OPTIONAL_CONFIGS: dict[str, tuple[str, list[str], str | None]] = {
    "bf16-direct": ("conv_algorithm", ["--amp", "bf16", "--conv_algorithm", "direct"], "bfloat16"),
    "fp32-direct": ("conv_algorithm", ["--conv_algorithm", "direct"], None),  # "fp32" is auto: Winograd per call
    "fp32-winograd": ("conv_algorithm", ["--conv_algorithm", "winograd"], None),  # kernels kept: 1.2 GB more
    "fp32-cl": ("channels_last", ["--channels_last"], None),
    "bf16-cl": ("channels_last", ["--amp", "bf16", "--channels_last"], "bfloat16"),
    "fp32-compile": ("compile", ["--compile"], None),  # only on request: minutes of compilation per size
}
#: Configurations run only when named in --configs.
ON_REQUEST = ("fp32-compile", "bf16-fp32-weights", "fp32-direct", "fp32-winograd")
BASELINE = "fp32"
DEFAULT_SIZES = "256x128,512x256,1024x512"
#: (warm-up, timed) iterations per size; sizes not listed use (1, 3).
DEFAULT_ITERS = {(256, 128): (2, 8), (512, 256): (1, 5), (1024, 512): (1, 3)}
#: Without native bf16 kernels a bf16 forward is orders of magnitude slower: by default only the smallest size,
#: with this many (warm-up, timed) iterations.
SLOW_BF16_ITERS = (1, 1)


def available_configs() -> dict[str, tuple[list[str], str | None]]:
    from synth.options.parse import build_parser

    dests = {action.dest for action in build_parser(is_train=False)._actions}
    configs = dict(CONFIGS)
    for name, (flag, flags, dtype) in OPTIONAL_CONFIGS.items():
        if flag in dests:
            configs[name] = (flags, dtype)
    return configs


def iterations(size: tuple[int, int], args: argparse.Namespace) -> tuple[int, int]:
    warmup, iters = DEFAULT_ITERS.get(size, (1, 3))
    return (args.warmup if args.warmup >= 0 else warmup), (args.iters or iters)


def synthetic_batch(width: int, height: int, seed: int = 0) -> dict:
    """{"label": LongTensor[1,1,H,W], "inst": LongTensor[1,1,H,W]} from the same generator as the training data."""
    import numpy as np
    import torch

    label, inst, _image = common.synthetic_sample(width, height, np.random.default_rng(seed))
    as_long = lambda a: torch.from_numpy(a.astype(np.int64))[None, None]  # noqa: E731
    return {"label": as_long(label), "inst": as_long(inst)}


def run_one(args: argparse.Namespace) -> dict:
    """Child mode: build the generator for one (size, config), time the forward pass, report JSON."""
    import torch

    from synth.allocator import tune_malloc

    malloc = tune_malloc()  # as the console commands do; SYNTH_MALLOC=system measures glibc's defaults
    if args.threads:
        torch.set_num_threads(args.threads)
    import synth.models  # noqa: F401  (registers the model)
    from synth.models.pix2pixhd_model import Pix2PixHDModel
    from synth.options import parse_test_options
    from synth.runtime import cast_for_inference, prepare_networks

    width, height = common.parse_size(args.size)
    warmup, iters = args.warmup, args.iters
    flags, dtype = available_configs()[args.config]
    opt = parse_test_options(["--dataroot", ".", *common.REFERENCE_ARCH, "--device", "cpu", *flags])
    torch.manual_seed(0)
    model = Pix2PixHDModel(opt, for_training=False).eval()
    prepare_networks(model, opt)
    if args.config not in KEEP_FP32_WEIGHTS:
        cast_for_inference(model, opt)
    batch = synthetic_batch(width, height)
    autocast = (torch.autocast("cpu", dtype=getattr(torch, dtype)) if dtype else contextlib.nullcontext())
    with torch.inference_mode(), autocast:
        semantics, _ = model.encode_input(batch)
        timing = common.time_callable(lambda: model(semantics), warmup, iters)
        fake = model(semantics)
    assert tuple(fake.shape) == (1, 3, height, width), fake.shape
    return {
        "size": args.size, "config": args.config, "malloc": malloc, "flags": flags, "autocast": dtype, **timing,
        "peak_rss_mb": common.peak_rss_mb(), "threads": torch.get_num_threads(),
        "output_finite": bool(torch.isfinite(fake.float()).all()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    configs = available_configs()
    default_configs = [name for name in configs if name not in ON_REQUEST]
    common.add_common_flags(parser, DEFAULT_SIZES, ",".join(default_configs))
    args = parser.parse_args()
    if args.one:
        common.emit_result(run_one(args))
        return

    names, sizes = common.chosen_configs_and_sizes(parser, args, configs)
    info = common.machine_info()
    common.print_machine(info)
    info["native_bf16"] = native_bf16 = common.native_bf16()
    explicit = "--configs" in sys.argv[1:] or any(a.startswith("--configs=") for a in sys.argv[1:])
    limit_bf16 = not native_bf16 and not explicit
    if limit_bf16:
        print(f"this CPU has no native bf16 kernels (oneDNN): bf16 runs only at {sizes[0]} with "
              f"{SLOW_BF16_ITERS[0]}+{SLOW_BF16_ITERS[1]} iterations by default (ask with --configs for more)")
    print("inference: global G (36 input channels, ngf 64, 4 down, 9 blocks), batch 1, eval + inference_mode,")
    print("random weights, input encoding not timed, fresh process per (size, config).")
    results = []
    for size in sizes:
        warmup, iters = iterations(common.parse_size(size), args)
        for name in names:
            if limit_bf16 and configs[name][1] is not None:
                if size != sizes[0]:
                    results.append({"size": size, "config": name, "skipped": "no native bf16 on this CPU"})
                    print(f"  {size} {name}: skipped (no native bf16)", flush=True)
                    continue
                warmup, iters = SLOW_BF16_ITERS
            child_args = ["--size", size, "--config", name, "--warmup", str(warmup), "--iters", str(iters)]
            if args.threads:
                child_args += ["--threads", str(args.threads)]
            result = common.run_child(Path(__file__), child_args)
            result.setdefault("size", size)
            result.setdefault("config", name)
            results.append(result)
            status = result.get("error") or f"{result['median_s']:.3f} s/img ({warmup}+{iters} iters)"
            print(f"  {size} {name}: {status}", flush=True)
            warmup, iters = iterations(common.parse_size(size), args)
            common.save_json(args.json, {"benchmark": "inference", "machine": info, "argv": sys.argv[1:],
                                         "results": results, "partial": True}, quiet=True)
    common.print_load_end(info)

    rows = []
    for result in results:
        if "skipped" in result:
            rows.append([result["size"], result["config"], "skipped", "-", "-"])
            continue
        base = next((r for r in results if r["size"] == result["size"] and r["config"] == BASELINE), None)
        rows.append([
            result["size"], result["config"], common.fmt_s(result), common.fmt_ratio(result, base),
            common.fmt_mb(result),
        ])
    print()
    print(common.markdown_table(
        ["size (WxH)", "config", "median s/img", f"speed-up vs {BASELINE}", "peak RSS MiB"], rows
    ))
    common.save_json(args.json, {"benchmark": "inference", "machine": info, "argv": sys.argv[1:], "results": results})


if __name__ == "__main__":
    main()
