"""Seconds from an edit to the rendered image in the editor (synth-web), server included, fp32 vs bf16, on the CPU.

One timed iteration is what the page does after a brush stroke: paint a disc of another class into the layout,
encode the layout as the page sends it (base64 label and instance arrays), POST /api/render to the editor's app
(FastAPI TestClient: routing, validation, the model lock, G under inference_mode, PNG + base64 of the answer),
and decode the returned image. Random weights (the speed does not depend on them):

- ``demo`` at 256x256: the demo's architecture (configs/demo.yaml: label_nc 5, ngf 16, 3 down-samplings, 4 blocks)
  on a demo scene;
- ``pix2pixhd`` at 512x256 and 1024x512: pix2pixHD's global G for Cityscapes (36 input channels, ngf 64, 4 down,
  9 blocks) on a synthetic Cityscapes-like layout.

Each (model, size, config) runs in a fresh child process; each prints one JSON line.

    python bench/editor_latency.py                                  # all three sizes, fp32 and bf16
    python bench/editor_latency.py --sizes demo:256x256 --configs fp32 --iters 2 --warmup 1 --json out.json
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

CONFIGS = {"fp32": "none", "bf16": "bf16"}
BASELINE = "fp32"
DEFAULT_SIZES = "demo:256x256,pix2pixhd:512x256,pix2pixhd:1024x512"
DEMO_ARCH = ["--label_nc", "5", "--ngf", "16", "--n_downsample_global", "3", "--n_blocks_global", "4"]
#: (warm-up, timed) iterations per size; sizes not listed use (1, 3).
DEFAULT_ITERS = {(256, 256): (2, 10), (512, 256): (1, 5), (1024, 512): (1, 3)}


def parse_entry(text: str) -> tuple[str, tuple[int, int]]:
    """'demo:256x256' -> ('demo', (256, 256))."""
    model, _, size = text.partition(":")
    if model not in ("demo", "pix2pixhd") or not size:
        raise SystemExit(f"--sizes takes MODEL:WxH entries with MODEL demo or pix2pixhd, not '{text}'")
    return model, common.parse_size(size)


def layout_of(model: str, width: int, height: int):
    """(label uint8, instance uint16) of a demo scene or a synthetic Cityscapes-like layout."""
    import numpy as np

    if model == "demo":
        from synth.data.demo import DemoConfig, render_demo_sample

        label, inst, _, _ = render_demo_sample(DemoConfig(width=width, height=height), "test", 0)
        return label, inst
    label, inst, _ = common.synthetic_sample(width, height, np.random.default_rng(0))
    return label, inst


def editor_client(model: str, amp: str):
    """A TestClient on the editor's app around a randomly initialised generator of ``model``."""
    import torch
    from fastapi.testclient import TestClient

    import synth.models  # noqa: F401  (registers the model)
    from synth.api import Run
    from synth.assembly import build_model
    from synth.options import parse_test_options
    from synth.runtime import prepare_networks
    from synth.web.server import EditorState, create_app

    arch = DEMO_ARCH if model == "demo" else common.REFERENCE_ARCH
    opt = parse_test_options(["--dataroot", ".", "--name", "bench", *arch, "--device", "cpu", "--amp", amp])
    torch.manual_seed(0)
    net = build_model(opt, for_training=False).eval()
    prepare_networks(net, opt)
    return TestClient(create_app(EditorState(Run(net, opt, None))))


def run_one(args: argparse.Namespace) -> dict:
    """Child mode: time edit -> rendered image for one (model, size, config); report JSON."""
    import numpy as np
    import torch
    from PIL import Image

    from synth.allocator import tune_malloc

    malloc = tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, (width, height) = parse_entry(args.size)
    client = editor_client(model, CONFIGS[args.config])
    label, inst = layout_of(model, width, height)
    thing = 2 if model == "demo" else 26
    step = {"n": 0}

    def edit_and_render() -> None:
        step["n"] += 1  # each edit paints somewhere else, as a person's strokes do
        k = step["n"]
        cy, cx = (17 * k) % height, (29 * k) % width
        yy, xx = np.ogrid[:height, :width]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= (min(width, height) // 16) ** 2
        label[disc], inst[disc] = thing, thing * 1000 + 900 + k % 99
        body = {"width": width, "height": height, "label": base64.b64encode(label.tobytes()).decode(),
                "inst": base64.b64encode(inst.astype("<u2").tobytes()).decode()}
        reply = client.post("/api/render", json=body)
        reply.raise_for_status()
        url = reply.json()["images"]["synthesized_image"]
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert image.size == (width, height), image.size

    timing = common.time_callable(edit_and_render, args.warmup, args.iters)
    return {"size": args.size, "config": args.config, "malloc": malloc, "amp": CONFIGS[args.config], **timing,
            "peak_rss_mb": common.peak_rss_mb(), "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_flags(parser, DEFAULT_SIZES, ",".join(CONFIGS))
    args = parser.parse_args()
    if args.one:
        common.emit_result(run_one(args))
        return
    names, sizes = common.chosen_configs_and_sizes(parser, args, list(CONFIGS))
    info = common.machine_info()
    common.print_machine(info)
    info["native_bf16"] = common.native_bf16()
    print("editor latency: edit -> POST /api/render -> decoded image, TestClient, random weights, batch 1.")
    results = []
    for entry in sizes:
        warmup, iters = DEFAULT_ITERS.get(parse_entry(entry)[1], (1, 3))
        warmup, iters = (args.warmup if args.warmup >= 0 else warmup), (args.iters or iters)
        for name in names:
            child = ["--size", entry, "--config", name, "--warmup", str(warmup), "--iters", str(iters)]
            if args.threads:
                child += ["--threads", str(args.threads)]
            result = common.run_child(Path(__file__), child)
            result.setdefault("size", entry)
            result.setdefault("config", name)
            results.append(result)
            shown = result.get("error") or f"{result['median_s']:.3f} s/edit"
            print(f"  {entry} {name}: {shown}", flush=True)
            common.save_json(args.json, {"benchmark": "editor_latency", "machine": info, "argv": sys.argv[1:],
                                         "results": results, "partial": True}, quiet=True)
    common.print_load_end(info)
    rows = []
    for result in results:
        base = next((r for r in results if r["size"] == result["size"] and r["config"] == BASELINE), None)
        rows.append([result["size"], result["config"], common.fmt_s(result), common.fmt_ratio(result, base),
                     common.fmt_mb(result)])
    print()
    print(common.markdown_table(["model:size", "config", "median s/edit", f"speed-up vs {BASELINE}", "peak RSS MiB"],
                                rows))
    common.save_json(args.json, {"benchmark": "editor_latency", "machine": info, "argv": sys.argv[1:],
                                 "results": results})


if __name__ == "__main__":
    main()
