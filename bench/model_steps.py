"""Seconds per training iteration of the per-instance models (modulated, GH-Feat, self-conditioned) against
pix2pixHD with the same global generator trunk, on one fixed batch (CPU).

Every configuration uses label_nc 35 with instance maps, a generator with ``--ngf`` (default 32) filters,
4 down-samplings and 9 residual blocks, pix2pixHD's discriminator (num_D 2, n_layers_D 3, ndf 64), the VGG loss
(random VGG19 weights: speed only), batch ``--batch`` (default 1) and synthetic data with ``--objects`` thing
instances per image (default 20; the Cityscapes samples in ../shared have 2-27 objects and 11-17 stuff segments
per image). ngf 32 is pix2pixHD's global G at half its width, chosen so that the costliest step (GH-Feat's: E,
the frozen G, D and an R1 penalty, a second backward through D) stays at seconds on 2 cores; ``--ngf 64`` gives
pix2pixHD's own width (its step alone is 4-5 s at 256x128 there, docs/benchmarks.md). ``--no_vgg`` drops the VGG
loss everywhere (smoke runs). Each configuration runs in a fresh child process, so the ratios come from the same
run on the same machine.

    pix2pixhd   pix2pixHD (the baseline row: global G of the same size)
    modulated   --model modulated: the same trunk style-modulated per instance, codes from BandCodeEncoder (E)
    ghfeat      --model ghfeat: GH-Feat's hierarchical encoder trained against the frozen modulated G
    selfcond    --model selfcond: the modulated model fine-tuned with per-instance attribute offsets and head
    selfcond-nolocal  the same without the locality term (--lambda_locality 0: SC-GAN's losses alone)

GH-Feat and self-conditioning start from a --model modulated run: a preparing child saves a freshly initialised
modulated run's checkpoint with ``Trainer.save`` (random weights: speed only) and pseudo-labels of its objects
as ``synth-selfcond label`` makes them (``collect_object_codes``: objects over 1/64 of their image;
``pseudo_labels``), along a random direction; the smaller objects go unlabelled, as they would there.
The JSON records each configuration's objects (ids >= 1000) and segments (every instance id, stuff included: the
N the instance masks are built over) in the timed batch.

    python bench/model_steps.py                                   # 256x128, all configs
    python bench/model_steps.py --configs pix2pixhd,modulated --iters 5 --json steps.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

CONFIGS: dict[str, list[str]] = {
    "pix2pixhd": [],
    "modulated": ["--model", "modulated", "--netG", "modulated"],
    "ghfeat": ["--model", "ghfeat", "--netG", "modulated"],
    "selfcond": ["--model", "selfcond", "--netG", "modulated"],
    "selfcond-nolocal": ["--model", "selfcond", "--netG", "modulated", "--lambda_locality", "0"],
}
NEEDS_PRETRAINED = ("ghfeat", "selfcond", "selfcond-nolocal")
BASELINE = "pix2pixhd"
VGG_FILE = "vgg19_random_weights.pth"
PRETRAINED_NAME = "modulated_run"
LABELS_FILE = "pseudo_labels.npz"


def arch_flags(args: argparse.Namespace) -> list[str]:
    """The generator size, batch and VGG loss shared by every configuration (and the pretrained modulated run)."""
    vgg = ["--no_vgg_loss"] if args.no_vgg else ["--vgg_weights", str(Path(args.workdir) / VGG_FILE)]
    return ["--ngf", str(args.ngf), "--n_downsample_global", "4", "--n_blocks_global", "9",
            "--batchSize", str(args.batch), *vgg]


def data_dir(work: Path, size: str) -> Path:
    width, height = common.parse_size(size)
    return work / f"data_{width}x{height}"


def pretrained_dir(work: Path, size: str) -> Path:
    return work / f"pretrained_{size}"


def model_flags(args: argparse.Namespace, config: str) -> list[str]:
    """Config flags plus the pretrained run / pseudo-labels the models built on a modulated run read."""
    prepared = pretrained_dir(Path(args.workdir), args.size)
    extra = [*arch_flags(args), *CONFIGS[config]]
    if config == "ghfeat":
        extra += ["--ghfeat_generator", str(prepared / PRETRAINED_NAME)]
    if config.startswith("selfcond"):
        extra += ["--sc_pretrained", str(prepared / PRETRAINED_NAME), "--sc_labels", str(prepared / LABELS_FILE)]
    return extra


def prepare(args: argparse.Namespace) -> dict:
    """Preparing child: a freshly initialised --model modulated run saved with Trainer.save, and pseudo-labels
    of its training objects along a random direction (what GH-Feat and self-conditioning start from)."""
    import numpy as np

    from synth.models import attributes as at
    from synth.selfcond import collect_object_codes
    from synth.trainer import Trainer

    work, out = Path(args.workdir), pretrained_dir(Path(args.workdir), args.size)
    opt = common.train_options(data_dir(work, args.size), out,
                               [*arch_flags(args), *CONFIGS["modulated"], "--name", PRETRAINED_NAME])
    trainer = Trainer(opt)
    checkpoint = trainer.save("latest")
    objects = collect_object_codes(trainer.model, trainer.loader)
    normal = np.random.default_rng(0).standard_normal(objects.codes.shape[1])
    direction = at.Direction(normal / np.linalg.norm(normal), 0.0)
    labels = at.pseudo_labels(["random"], [direction], objects.codes, objects.keys, objects.ids)
    labels.save(out / LABELS_FILE)
    return {"checkpoint": str(checkpoint), "labels": str(out / LABELS_FILE), "labelled_objects": len(objects.keys)}


def batch_instances(batch: dict) -> dict:
    """Objects (ids >= 1000) and segments (every id) of the batch's instance maps, summed over its images."""
    import torch

    per_image = [torch.unique(inst) for inst in batch["inst"]]
    return {"objects": sum(int((ids >= 1000).sum()) for ids in per_image),
            "segments": sum(len(ids) for ids in per_image), "batch_size": len(per_image)}


def run_one(args: argparse.Namespace) -> dict:
    """Child mode: one configuration at one size -> timing, instance counts, parameter counts, peak RSS as JSON."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from synth.trainer import Trainer

    with common.temp_dir("synth-bench-run-") as runs:
        opt = common.train_options(data_dir(Path(args.workdir), args.size), Path(runs), model_flags(args, args.config))
        trainer = Trainer(opt)
        batch = next(iter(trainer.loader))
        params = {name: sum(p.numel() for p in net.parameters()) for name, net in trainer.model.networks().items()}
        timing = common.time_callable(lambda: trainer.train_step(batch), args.warmup, args.iters)
    return {
        "size": args.size, "config": args.config, **timing, "peak_rss_mb": common.peak_rss_mb(),
        **batch_instances(batch), "params": params, "trained_params": sum(p.numel() for p in trainer.g_params)
        + sum(p.numel() for p in trainer.d_params), "ngf": args.ngf, "vgg_loss": not args.no_vgg,
        "threads": torch.get_num_threads(),
    }


def child_args(args: argparse.Namespace, size: str, work: Path) -> list[str]:
    return ["--size", size, "--warmup", str(args.warmup if args.warmup >= 0 else 1), "--iters",
            str(args.iters or 3), "--workdir", str(work), "--ngf", str(args.ngf), "--batch", str(args.batch)] + (
        ["--threads", str(args.threads)] if args.threads else []) + (["--no_vgg"] if args.no_vgg else [])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_flags(parser, "256x128", ",".join(CONFIGS))
    parser.add_argument("--ngf", type=int, default=32, help="generator width of every config (default 32)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--objects", type=int, default=20, help="thing instances drawn per image (default 20)")
    parser.add_argument("--no_vgg", action="store_true", help="every config without the VGG loss (smoke runs)")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)  # child: the pretrained run
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.prepare:
        common.emit_result(prepare(args))
        return
    if args.one:
        common.emit_result(run_one(args))
        return
    names, sizes = common.chosen_configs_and_sizes(parser, args, list(CONFIGS))
    info = common.machine_info()
    common.print_machine(info)
    payload = {"benchmark": "model_steps", "machine": info, "argv": sys.argv[1:], "prepared": {}, "results": []}
    results = payload["results"]
    with common.temp_dir("synth-bench-") as work:
        work = Path(work)
        if not args.no_vgg:
            common.save_random_vgg19(work / VGG_FILE)
        for size in sizes:
            width, height = common.parse_size(size)
            common.make_dataset(data_dir(work, size), width, height, n=max(2, args.batch), objects=args.objects)
            prepared = None
            if any(name in NEEDS_PRETRAINED for name in names):
                prepared = common.run_child(Path(__file__), ["--prepare", *child_args(args, size, work)])
                payload["prepared"][size] = prepared
                status = prepared.get("error") or f"saved, {prepared['labelled_objects']} objects pseudo-labelled"
                print(f"  {size} pretrained modulated run: {status}", flush=True)
            for name in names:
                if name in NEEDS_PRETRAINED and "error" in prepared:
                    result = {"error": f"no pretrained run ({prepared['error']})"}
                else:
                    result = common.run_child(Path(__file__), [*child_args(args, size, work), "--config", name])
                result.setdefault("size", size)
                result.setdefault("config", name)
                results.append(result)
                status = result.get("error") or f"{result['median_s']:.3f} s/iter"
                print(f"  {size} {name}: {status}", flush=True)
                common.save_json(args.json, payload, quiet=True)
    common.print_load_end(info)
    print()
    print(common.markdown_table(
        ["size", "config", "median s/iter", "cost vs pix2pixhd", "objects / segments in batch", "trained params (M)",
         "peak RSS MiB"],
        [row(r, results) for r in results],
    ))
    common.save_json(args.json, payload)


def row(result: dict, results: list[dict]) -> list[str]:
    """One table row; the cost ratio is this config's median over the baseline's of the same size, same run."""
    if "error" in result:
        return [result["size"], result["config"], "failed", "-", "-", "-", "-"]
    base = next((r for r in results if r["size"] == result["size"] and r["config"] == BASELINE), None)
    ok = base is not None and "error" not in base
    return [
        result["size"], result["config"], common.fmt_s(result),
        f"{result['median_s'] / base['median_s']:.2f}x" if ok else "-",
        f"{result['objects']} / {result['segments']}", f"{result['trained_params'] / 1e6:.2f}", common.fmt_mb(result),
    ]


if __name__ == "__main__":
    main()
