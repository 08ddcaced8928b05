"""The generator's first convolution when its leading input channels are a one-hot label map, for the CPU.

A convolution of a one-hot map adds, for each output pixel and each of the k x k kernel positions, the kernel
column of the label found there: a gather of weights, not a product. pix2pixHD's 7x7 stem on 35 one-hot channels
at full resolution is about 12 % of the global G's multiplications; as an ``embedding_bag`` over a
[k*k*labels, out] table it is about 5x faster on a CPU, and the same sum to fp32 rounding. The other input
channels (instance boundaries, features) are convolved directly. The weight gradient is the direct
convolution's (``convolution_backward`` on the same input): a scatter of 49 shifted copies of the output gradient
is slower than it on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _is_one_hot(labels: torch.Tensor) -> bool:
    """Whether every pixel of ``labels`` [B, n, H, W] is exactly one 1 and zeros (non-negative, sum 1, max 1)."""
    return bool((labels.amin() >= 0) & (labels.sum(1) == 1).all() & (labels.amax(1) == 1).all())


def _label_ids(labels: torch.Tensor) -> torch.Tensor:
    """The label id of each pixel of an exactly one-hot [B, n, H, W]: sum_c c * labels_c, one matrix product
    (several times faster than argmax over channels), in fp32 or wider, where ids are exact."""
    batch, n, height, width = labels.shape
    with torch.autocast("cpu", enabled=False):
        dtype = torch.promote_types(labels.dtype, torch.float32)
        ids = torch.matmul(torch.arange(n, dtype=dtype, device=labels.device), labels.to(dtype).reshape(batch, n, -1))
    return ids.long().view(batch, height, width)


def _gather_table(weight: torch.Tensor, n_labels: int) -> torch.Tensor:
    """The label channels' kernels as a [k*k*n, out] table: row (dy*k + dx)*n + label is W[:, label, dy, dx]."""
    out_channels, _, kh, kw = weight.shape
    return weight[:, :n_labels].permute(2, 3, 1, 0).reshape(kh * kw * n_labels, out_channels)


#: Output pixels gathered per block: the [pixels, k*k] indices and the [pixels, out] sums stay in cache (1-2 MB)
#: instead of hundreds of MB at 1024x512, and their transposing add into the [out, pixels] map ran 4x faster in
#: blocks of 2-4 K pixels than as one strided add (2-core EPYC, 64 channels).
BLOCK_PIXELS = 4096


def _add_gathered(out: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, n_labels: int) -> None:
    """``out`` [B, O, H', W'] += the gathered label sums, block of output rows by block, in place."""
    batch, _, out_h, out_w = out.shape
    kh, kw = ids.shape[1] - out_h + 1, ids.shape[2] - out_w + 1
    windows = ids.unfold(1, kh, 1).unfold(2, kw, 1)  # a view: [B, H', W', kh, kw]
    offsets = torch.arange(kh * kw, device=ids.device).view(kh, kw) * n_labels
    rows = max(1, BLOCK_PIXELS // out_w)
    channels_last = not out.is_contiguous()
    flat = out.view(batch, out.shape[1], -1) if not channels_last else None
    for top in range(0, out_h, rows):
        bottom = min(out_h, top + rows)
        index = (windows[:, top:bottom] + offsets).reshape(-1, kh * kw)
        sums = F.embedding_bag(index, table, mode="sum").view(batch, (bottom - top) * out_w, -1)
        if channels_last:
            out[:, :, top:bottom] += sums.view(batch, bottom - top, out_w, -1).permute(0, 3, 1, 2)
        else:
            flat[:, :, top * out_w:bottom * out_w] += sums.transpose(1, 2)


class OneHotConvFunction(torch.autograd.Function):
    """``F.conv2d(x, weight, bias)`` (stride 1, no padding) for an ``x`` whose first ``n_labels`` channels are the
    one-hot of ``ids``: label channels by gather, the others directly; backward as the direct convolution's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, ids: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                n_labels: int) -> torch.Tensor:
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        batch, _, height, width = x.shape
        kh, kw = weight.shape[2:]
        # As the convolution under autocast: weights rounded to the compute dtype, products summed in fp32 or wider,
        # one rounding of the output (so bf16 weights kept for inference give what autocast gives).
        acc = torch.promote_types(dtype, torch.float32)
        with torch.autocast("cpu", enabled=False):
            table = _gather_table(weight.to(dtype), n_labels).to(acc)
            out_h, out_w = height - kh + 1, width - kw + 1
            if x.shape[1] > n_labels:  # the other channels directly (with the bias)
                out = F.conv2d(x[:, n_labels:].to(dtype).to(acc), weight[:, n_labels:].to(dtype).to(acc),
                               None if bias is None else bias.to(dtype).to(acc))
            else:
                out = torch.zeros(batch, weight.shape[0], out_h, out_w, dtype=acc, device=x.device)
                if bias is not None:
                    out += bias.to(dtype).to(acc).view(1, -1, 1, 1)
            _add_gathered(out, ids, table, n_labels)
        ctx.save_for_backward(x, weight)
        ctx.compute_dtype, ctx.has_bias = dtype, bias is not None
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
            else torch.contiguous_format  # the input's layout, which the next layers keep
        return out.to(dtype).contiguous(memory_format=layout)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        dtype = ctx.compute_dtype
        mask = (ctx.needs_input_grad[0], ctx.needs_input_grad[2], ctx.has_bias and ctx.needs_input_grad[3])
        grad_x, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad_out.to(dtype), x.to(dtype), weight.to(dtype), [weight.shape[0]] if ctx.has_bias else None,
            [1, 1], [0, 0], [1, 1], False, [0, 0], 1, mask,
        )
        return (grad_x.to(x.dtype) if mask[0] else None, None,
                grad_weight.to(weight.dtype) if mask[1] else None,
                grad_bias.to(weight.dtype) if mask[2] else None, None)


class OneHotConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (stride 1, no padding, same state-dict keys) that, on the CPU, convolves its first
    ``label_channels`` input channels by gather whenever they are exactly one-hot (checked on each call: a few
    reductions, against the gather's ~5x), and directly otherwise (soft or edited labels, GPUs, ONNX export)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, label_channels: int = 0) -> None:
        super().__init__(in_channels, out_channels, kernel_size)
        self.label_channels = label_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.label_channels
        if (not n or x.device.type != "cpu" or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
                or x.shape[1] < n):
            return super().forward(x)
        labels = x[:, :n]
        if not _is_one_hot(labels):  # a CPU tensor: reading the answer waits on nothing
            return super().forward(x)
        return OneHotConvFunction.apply(x, _label_ids(labels), self.weight, self.bias, n)
