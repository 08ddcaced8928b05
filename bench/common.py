"""Shared helpers of the benchmark scripts: synthetic data, options, timing, peak memory, fresh subprocesses, tables.

Each configuration runs in its own child process (``python bench/SCRIPT.py --one ...``) because the peak resident
set size (``ru_maxrss``) is a process-wide high-water mark: measured in one process, every configuration after
the largest one would report the largest one's peak. The child prints one JSON line on stdout; the parent collects
them, computes the ratios and prints the table.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python bench/x.py` puts bench/ on the path, not the repository root
    sys.path.insert(0, str(REPO_ROOT))

RESULT_PREFIX = "BENCH_RESULT "  # the child's JSON line starts with this, so stray prints cannot be mistaken for it

#: Cityscapes-like ids: stuff classes and "thing" classes whose pixels carry instance ids class * 1000 + k.
STUFF_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23)
THING_IDS = (24, 25, 26, 27, 28, 31, 32, 33)


# ----------------------------------------------------------------------------------------------- sizes, data


def parse_size(text: str) -> tuple[int, int]:
    """'512x256' -> (width, height)."""
    width, height = text.lower().split("x")
    return int(width), int(height)


def synthetic_sample(width: int, height: int, rng: np.random.Generator, objects: int | None = None
                     ) -> tuple[np.ndarray, ...]:
    """One (label uint8, instance uint16, RGB uint8) triple: blobs of stuff labels and thing instances, ``objects``
    of them drawn (default 3-6; later ones may hide earlier ones)."""
    coarse = rng.choice(STUFF_IDS, size=(max(height // 32, 2), max(width // 32, 2))).astype(np.uint8)
    label = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_NEAREST)
    inst = label.astype(np.uint16)
    for k in range(int(rng.integers(3, 7)) if objects is None else objects):
        cls = int(rng.choice(THING_IDS))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        radius = int(rng.integers(max(height // 20, 2), max(height // 6, 3)))
        cv2.circle(label, centre, radius, cls, thickness=-1)
        cv2.circle(inst, centre, radius, cls * 1000 + k, thickness=-1)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    assert int(label.max()) < 35
    return label, inst, image


def make_dataset(root: Path, width: int, height: int, n: int = 2, phase: str = "train", seed: int = 0,
                 objects: int | None = None) -> Path:
    """``n`` random samples in pix2pixHD's layout (``{phase}_label``, ``{phase}_inst``, ``{phase}_img``), each
    with ``objects`` thing instances drawn (default 3-6)."""
    if objects is not None and not 0 <= objects < 1000:
        raise ValueError(f"objects must be in 0..999 (instance ids are class * 1000 + k), not {objects}")
    rng = np.random.default_rng(seed)
    for sub in ("label", "inst", "img"):
        (root / f"{phase}_{sub}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        label, inst, image = synthetic_sample(width, height, rng, objects)
        name = f"bench_{i:05d}.png"
        for sub, array in (("label", label), ("inst", inst), ("img", image[:, :, ::-1])):  # cv2 writes BGR
            if not cv2.imwrite(str(root / f"{phase}_{sub}" / name), array):
                raise OSError(f"cannot write {root / f'{phase}_{sub}' / name}")
    return root


def save_random_vgg19(path: Path) -> Path:
    """torchvision's VGG19 with random weights (ImageNet weights cannot be downloaded here; speed is the same).

    Saved in the parent once and shared by the children (building the full VGG19 with its classifier is slow).
    """
    import torch
    import torchvision

    torch.save(torchvision.models.vgg19(weights=None).state_dict(), path)
    return path


#: pix2pixHD's reference architecture (its train.py defaults for Cityscapes with a global generator).
REFERENCE_ARCH = [
    "--label_nc", "35", "--netG", "global", "--ngf", "64", "--n_downsample_global", "4", "--n_blocks_global", "9",
    "--num_D", "2", "--n_layers_D", "3", "--ndf", "64", "--norm", "instance",
]


def train_options(dataroot: Path, run_dir: Path, extra: list[str]):
    """Training options for the reference config on ``dataroot`` (CPU, no logging side effects)."""
    from synth.options import parse_train_options

    return parse_train_options([
        "--dataroot", str(dataroot), "--checkpoints_dir", str(run_dir), "--name", "bench", *REFERENCE_ARCH,
        "--batchSize", "1", "--resize_or_crop", "none", "--nThreads", "0", "--device", "cpu",
        "--no_wandb", "--no_progress", "--no_html", "--serial_batches", "--no_flip", *extra,
    ])


def temp_dir(prefix: str) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=prefix)


# ----------------------------------------------------------------------------------------------- measuring


def time_callable(fn: Callable[[], object], warmup: int, iters: int) -> dict:
    """Run ``fn`` ``warmup`` times untimed, then ``iters`` times timed with perf_counter (CPU work is synchronous).

    Returns the median, the interquartile range, min and max in seconds, plus every timed sample.
    """
    warmup_s = []
    for _ in range(warmup):
        start = time.perf_counter()
        fn()
        warmup_s.append(time.perf_counter() - start)
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    if len(samples) >= 2:
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q1 = q3 = samples[0]
    return {
        "median_s": statistics.median(samples), "iqr_s": q3 - q1, "min_s": min(samples), "max_s": max(samples),
        "samples_s": samples, "warmup_s": warmup_s, "warmup": warmup, "iters": iters,
    }


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def emit_result(result: dict) -> None:
    """The child's answer to the parent: one JSON line on stdout."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(script: Path, args: list[str], timeout: float | None = None) -> dict:
    """Run ``python SCRIPT --one ARGS`` in a fresh process; its JSON result, or {'error': ...} if it failed."""
    cmd = [sys.executable, str(script), "--one", *args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO_ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


def native_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX512-BF16 / AMX); without them bf16 convs crawl."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_conv_probe(width: int = 256, height: int = 128, channels: int = 64) -> dict:
    """One 3x3 conv (a pix2pixHD-sized layer) in fp32 and under bf16 autocast, NCHW and channels-last: s/call."""
    import torch

    x = torch.randn(1, channels, height, width)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
    timings = {}
    with torch.no_grad():
        for layout in ("nchw", "channels_last"):
            if layout == "channels_last":
                conv, x = conv.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
            call = functools.partial(conv, x)
            timings[f"fp32_{layout}"] = time_callable(call, 1, 3)["median_s"]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                timings[f"bf16_{layout}"] = time_callable(call, 1, 1 if layout == "nchw" else 3)["median_s"]
    return timings


def print_bf16_probe(probe: dict) -> None:
    print(
        "bf16 probe (one 64->64 3x3 conv at 256x128, s/call): "
        + ", ".join(f"{k} {v:.4f}" for k, v in probe.items())
        + f"; bf16/fp32 time ratio NCHW {probe['bf16_nchw'] / probe['fp32_nchw']:.1f}x, "
        f"channels-last {probe['bf16_channels_last'] / probe['fp32_channels_last']:.1f}x"
    )


# ----------------------------------------------------------------------------------------------- reporting


def machine_info() -> dict:
    import torch

    return {
        "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(), "cpu_count": os.cpu_count(),
        "cpu": _cpu_name(), "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_avg_start": _load_avg(),
    }


def _load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_machine(info: dict) -> None:
    print(
        f"machine: {info['cpu']} ({info['cpu_count']} logical CPUs), torch {info['torch']}, python {info['python']}, "
        f"{info['threads']} intra-op threads, {info['interop_threads']} inter-op threads; {info['date']}; "
        f"load average (1/5/15 min) {info['load_avg_start']}"
    )


def print_load_end(info: dict) -> None:
    info["load_avg_end"] = _load_avg()
    print(f"load average at the end (1/5/15 min): {info['load_avg_end']} (other jobs share these cores)")


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def save_json(path: str | None, payload: dict, quiet: bool = False) -> None:
    """Write the results (also after each configuration, so an interrupted run keeps what it measured)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        if not quiet:
            print(f"results written to {path}")


def add_common_flags(parser: argparse.ArgumentParser, sizes: str, configs: str) -> None:
    parser.add_argument("--sizes", default=sizes, help=f"comma-separated WxH sizes (default {sizes})")
    parser.add_argument("--configs", default=configs, help=f"comma-separated configurations (default {configs})")
    parser.add_argument("--iters", type=int, default=0, help="timed iterations per config (0: per-size default)")
    parser.add_argument("--warmup", type=int, default=-1, help="warm-up iterations (-1: per-size default)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads in the children (0: torch's)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child mode: one config, JSON out
    parser.add_argument("--size", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)  # data (and VGG file) made by the parent


def fmt_s(result: dict) -> str:
    if "error" in result:
        return "failed"
    return f"{result['median_s']:.3f} (IQR {result['iqr_s']:.3f})"


def fmt_ratio(result: dict, base: dict | None) -> str:
    if "error" in result or base is None or "error" in base:
        return "-"
    return f"{base['median_s'] / result['median_s']:.2f}x"


def fmt_mb(result: dict) -> str:
    return "-" if "error" in result else f"{result['peak_rss_mb']:,.0f}"


def chosen_configs_and_sizes(parser: argparse.ArgumentParser, args: argparse.Namespace,
                             available: list[str]) -> tuple[list[str], list[str]]:
    """The comma-separated --configs (each checked against ``available``) and --sizes of a benchmark script."""
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in names if c not in available]
    if unknown:
        parser.error(f"unknown config(s) {', '.join(unknown)}; available: {', '.join(available)}")
    return names, [s.strip() for s in args.sizes.split(",") if s.strip()]
