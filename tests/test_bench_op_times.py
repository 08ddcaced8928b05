"""bench/op_times.py's timer: every aten op of a function is counted once per call, grouped by its arguments'
shapes, dtypes and layouts, forward and backward alike (no timing asserted)."""

import torch

from bench import op_times


def test_ops_are_counted_per_run_by_shape_dtype_and_layout():
    a = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(3, 5)
    image = torch.randn(1, 2, 3, 3).contiguous(memory_format=torch.channels_last)

    def step():
        (a @ b).sum().backward()
        image.t() if image.dim() == 2 else image.relu()

    times = op_times.time_ops(step, repeats=3)
    assert times[("aten.mm", "4x3:float32 3x5:float32")][0] == 1  # forward, once per run of step
    backward = [key for key in times if key[0] == "aten.mm" and key[1] != "4x3:float32 3x5:float32"]
    assert backward  # the product's gradient (a's), timed as well
    assert times[("aten.relu", "1x2x3x3:float32(cl)")][0] == 1
    assert all(seconds >= 0 for _, seconds in times.values())
    ops = op_times.by_op(times)
    assert [row[2] for row in ops] == sorted((row[2] for row in ops), reverse=True)
    assert dict((op, calls) for op, calls, _ in ops)["aten.mm"] == 1 + len(backward)
    assert op_times.describe(torch.ones(2, 3).t()) == "3x2:float32(nc)" and op_times.describe(3) is None
