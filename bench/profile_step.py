"""Where a training step's time goes: torch.profiler's per-op table of synth's pix2pixHD step (reference config).

Prints the ops by self CPU time and the number of convolution forward / backward calls per step, and writes the
table as JSON (``--json``) so it can be set beside the reference code's table from the same run
(``../shared/anchor_pix2pixhd``). Same model, data and configs as ``bench/train_step.py``.

    python bench/profile_step.py --size 256x128 --config fp32-fused --steps 2 --json profile.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.train_step import available_configs, warmed_trainer  # noqa: E402

#: aten ops that are a convolution's forward / backward on the CPU.
CONV_FORWARD = ("aten::convolution",)
CONV_BACKWARD = ("aten::convolution_backward",)


def op_table(profiler, steps: int, top: int) -> list[dict]:
    """The ``top`` ops by self CPU time, per step: name, calls, self and total milliseconds."""
    rows = []
    for event in profiler.key_averages():
        rows.append({"op": event.key, "calls": event.count / steps, "self_ms": event.self_cpu_time_total / 1e3 / steps,
                     "total_ms": event.cpu_time_total / 1e3 / steps})
    rows.sort(key=lambda r: -r["self_ms"])
    return rows[:top]


def conv_shape_table(profiler, steps: int, top: int) -> list[dict]:
    """The ``top`` convolution calls grouped by input shapes, by self CPU time per step: where the conv time goes."""
    rows = [{"op": event.key, "shapes": str(event.input_shapes), "calls": event.count / steps,
             "self_ms": event.self_cpu_time_total / 1e3 / steps}
            for event in profiler.key_averages(group_by_input_shape=True)
            if event.key in CONV_FORWARD + CONV_BACKWARD or "convolution" in event.key]
    rows.sort(key=lambda r: -r["self_ms"])
    return rows[:top]


def conv_counts(rows: list[dict]) -> dict:
    """Convolution forward and backward calls per step."""
    return {"forward": sum(r["calls"] for r in rows if r["op"] in CONV_FORWARD),
            "backward": sum(r["calls"] for r in rows if r["op"] in CONV_BACKWARD)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="256x128")
    parser.add_argument("--config", default="fp32-fused", choices=sorted(available_configs()))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--shapes", type=int, default=0, help="also list the N costliest convolutions by shape")
    parser.add_argument("--json")
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from synth.allocator import tune_malloc

    malloc = tune_malloc()
    with common.temp_dir("synth-profile-") as work:
        trainer, batch = warmed_trainer(Path(work), args.size, args.config, args.warmup)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes > 0) as prof:
            for _ in range(args.steps):
                trainer.train_step(batch)
    rows = op_table(prof, args.steps, 10_000)
    convs = conv_counts(rows)
    print(f"synth {args.size} {args.config} (malloc {malloc}, {torch.get_num_threads()} threads): "
          f"{convs['forward']:.0f} conv forward, {convs['backward']:.0f} conv backward per step")
    print(common.markdown_table(["op", "calls/step", "self ms/step", "total ms/step"],
                                [[r["op"], f"{r['calls']:.0f}", f"{r['self_ms']:.1f}", f"{r['total_ms']:.1f}"]
                                 for r in rows[: args.top]]))
    shapes = conv_shape_table(prof, args.steps, args.shapes) if args.shapes else []
    if shapes:
        print(common.markdown_table(["op", "input shapes", "calls/step", "self ms/step"],
                                    [[r["op"], r["shapes"][:120], f"{r['calls']:.0f}", f"{r['self_ms']:.1f}"]
                                     for r in shapes]))
    common.save_json(args.json, {"benchmark": "profile_step", "machine": common.machine_info(), "size": args.size,
                                 "config": args.config, "malloc": malloc, "convolutions": convs, "ops": rows,
                                 "conv_shapes": shapes})


if __name__ == "__main__":
    main()
