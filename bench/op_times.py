"""Where a training step's time goes, op by op and shape by shape, without the profiler's inflation.

``torch.profiler`` with ``record_shapes=True`` inflated single ops by 2-8x from one run to the next on 2 cores
(docs/benchmarks.md). This times each aten op of a real step with ``perf_counter`` inside a ``TorchDispatchMode``
(CPU ops are synchronous), forward and backward alike, and groups them by op and by the shapes, dtypes and layouts
of their first three tensor arguments. The mode's own Python cost falls between ops, not inside them, so the step
itself runs 5-10 % slower but each op's time is its own. Same model, data and configs as ``bench/train_step.py``.

    python bench/op_times.py --size 512x256 --config bf16-fused --steps 2 --top 40 --match mm
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.train_step import available_configs, warmed_trainer  # noqa: E402


def describe(value: object) -> str | None:
    """'1x64x32x32:bfloat16(cl)' for a tensor (cl: channels-last, nc: other non-contiguous strides), else None."""
    import torch

    if not isinstance(value, torch.Tensor):
        return None
    layout = ""
    if not value.is_contiguous():
        layout = "(cl)" if value.dim() == 4 and value.is_contiguous(memory_format=torch.channels_last) else "(nc)"
    return "x".join(map(str, value.shape)) + ":" + str(value.dtype).removeprefix("torch.") + layout


def time_ops(fn: Callable[[], object], repeats: int = 1) -> dict[tuple[str, str], list[float]]:
    """Run ``fn`` ``repeats`` times under a dispatch mode that times every aten op: (op, argument shapes) ->
    [calls, seconds], both per run of ``fn``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    totals: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0, 0.0])

    class OpTimer(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            start = time.perf_counter()
            result = func(*args, **kwargs)
            elapsed = time.perf_counter() - start
            shapes = [d for d in map(describe, [*args, *kwargs.values()]) if d][:3]
            entry = totals[(str(func.overloadpacket), " ".join(shapes))]
            entry[0] += 1
            entry[1] += elapsed
            return result

    for _ in range(repeats):
        with OpTimer():
            fn()
    return {key: [calls / repeats, seconds / repeats] for key, (calls, seconds) in totals.items()}


def by_op(times: dict[tuple[str, str], list[float]]) -> list[tuple[str, float, float]]:
    """(op, calls, seconds) summed over shapes, costliest first."""
    ops: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for (op, _), (calls, seconds) in times.items():
        ops[op][0] += calls
        ops[op][1] += seconds
    return sorted(((op, c, s) for op, (c, s) in ops.items()), key=lambda row: -row[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="512x256")
    parser.add_argument("--config", default="bf16-fused", choices=sorted(available_configs()))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default="", help="list only ops whose name contains this, by shape")
    args = parser.parse_args()

    import torch

    from synth.allocator import tune_malloc

    malloc = tune_malloc()
    with common.temp_dir("synth-op-times-") as work:
        trainer, batch = warmed_trainer(Path(work), args.size, args.config, args.warmup)
        start = time.perf_counter()
        times = time_ops(lambda: trainer.train_step(batch), args.steps)
        step_s = (time.perf_counter() - start) / args.steps
    total = sum(seconds for _, seconds in times.values())
    print(f"synth {args.size} {args.config} (malloc {malloc}, {torch.get_num_threads()} threads): "
          f"{step_s:.3f} s a step under the timer, {total:.3f} s of it inside aten ops")
    print(common.markdown_table(["op", "calls/step", "ms/step"],
                                [[op, f"{calls:.0f}", f"{seconds * 1e3:.1f}"]
                                 for op, calls, seconds in by_op(times)[: args.top]]))
    rows = sorted(((key, value) for key, value in times.items() if args.match in key[0]), key=lambda r: -r[1][1])
    print(common.markdown_table(["op", "arguments", "calls/step", "ms/step"],
                                [[op, shapes[:110], f"{calls:.0f}", f"{seconds * 1e3:.1f}"]
                                 for (op, shapes), (calls, seconds) in rows[: args.top]]))


if __name__ == "__main__":
    main()
