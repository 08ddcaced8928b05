"""Seconds per training iteration and parameter counts of ECGAN vs the pix2pixHD core it is built on (CPU).

All configurations use pix2pixHD's reference generator trunk (label_nc 35, instances, global G with ngf 64,
4 down-samplings, 9 residual blocks), batch 1, the VGG loss (random VGG19 weights: speed only) and one fixed batch;
each runs in a fresh child process, so the ratios come from the same run on the same machine.

    pix2pixhd      pix2pixHD as published (num_D 2, n_layers_D 3, LSGAN)
    pix2pixhd-D4   pix2pixHD with ECGAN's discriminator (n_layers_D 4, hinge): isolates ECGAN's own cost
    ecgan          the full ECGAN (edge branch + transfer, semantic preserving, similarity, contrastive)
    ecgan-gen      ECGAN's generator parts only (--no_similarity_loss --no_contrastive_loss)

    python bench/ecgan_step.py                       # 256x128, all configs
    python bench/ecgan_step.py --iters 5 --json out.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

ECGAN_D = ["--n_layers_D", "4", "--gan_mode", "hinge"]
CONFIGS: dict[str, list[str]] = {
    "pix2pixhd": [],
    "pix2pixhd-D4": ECGAN_D,
    "ecgan": ["--model", "ecgan", *ECGAN_D],
    "ecgan-gen": ["--model", "ecgan", *ECGAN_D, "--no_similarity_loss", "--no_contrastive_loss"],
}
BASELINE = "pix2pixhd"
VGG_FILE = "vgg19_random_weights.pth"


def run_one(args: argparse.Namespace) -> dict:
    """Child mode: one configuration at one size -> timing, parameter counts, peak RSS as JSON."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from synth.trainer import Trainer

    width, height = common.parse_size(args.size)
    work = Path(args.workdir)
    with common.temp_dir("synth-bench-run-") as runs:
        opt = common.train_options(work / f"data_{width}x{height}", Path(runs),
                                   ["--vgg_weights", str(work / VGG_FILE), *CONFIGS[args.config]])
        trainer = Trainer(opt)
        batch = next(iter(trainer.loader))
        nets = trainer.model.networks()
        params = {name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()}
        timing = common.time_callable(lambda: trainer.train_step(batch), args.warmup, args.iters)
    return {
        "size": args.size, "config": args.config, **timing, "peak_rss_mb": common.peak_rss_mb(), "params": params,
        "g_params": sum(v for k, v in params.items() if k != "D"), "d_params": params.get("D", 0),
        "inference_params": params["G"], "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_flags(parser, "256x128", ",".join(CONFIGS))
    args = parser.parse_args()
    if args.one:
        common.emit_result(run_one(args))
        return
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    if unknown := [c for c in names if c not in CONFIGS]:
        parser.error(f"unknown config(s) {', '.join(unknown)}; available: {', '.join(CONFIGS)}")
    warmup, iters = (args.warmup if args.warmup >= 0 else 1), (args.iters or 3)
    info = common.machine_info()
    common.print_machine(info)
    results = []
    with common.temp_dir("synth-bench-") as work:
        work = Path(work)
        common.save_random_vgg19(work / VGG_FILE)
        for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
            width, height = common.parse_size(size)
            common.make_dataset(work / f"data_{width}x{height}", width, height, n=2)
            for name in names:
                child = ["--size", size, "--config", name, "--warmup", str(warmup), "--iters", str(iters),
                         "--workdir", str(work)] + (["--threads", str(args.threads)] if args.threads else [])
                result = common.run_child(Path(__file__), child)
                result.setdefault("size", size)
                result.setdefault("config", name)
                results.append(result)
                status = result.get("error") or f"{result['median_s']:.3f} s/iter"
                print(f"  {size} {name}: {status}", flush=True)
    common.print_load_end(info)
    print()
    print(common.markdown_table(
        ["size", "config", "median s/iter", "time vs pix2pixhd", "G-side params (M)", "vs pix2pixhd",
         "G params at test (M)", "D params (M)", "peak RSS MiB"],
        [row(r, results) for r in results],
    ))
    common.save_json(args.json, {"benchmark": "ecgan_step", "machine": info, "argv": sys.argv[1:], "results": results})


def row(result: dict, results: list[dict]) -> list[str]:
    """One table row; ratios against the baseline of the same size from this run."""
    if "error" in result:
        return [result["size"], result["config"], "failed", "-", "-", "-", "-", "-", "-"]
    base = next((r for r in results if r["size"] == result["size"] and r["config"] == BASELINE), None)
    ok = base is not None and "error" not in base
    return [
        result["size"], result["config"], common.fmt_s(result),
        f"{result['median_s'] / base['median_s']:.2f}x" if ok else "-", f"{result['g_params'] / 1e6:.2f}",
        f"{result['g_params'] / base['g_params']:.3f}x" if ok else "-", f"{result['inference_params'] / 1e6:.2f}",
        f"{result['d_params'] / 1e6:.2f}", common.fmt_mb(result),
    ]


if __name__ == "__main__":
    main()
