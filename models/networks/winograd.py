"""3x3 stride-1 convolutions by Winograd's F(2x2, 3x3) algorithm, for the CPU.

The same convolution as ``F.conv2d`` (to fp32 rounding), with 2.25x fewer multiplications: the input is cut into
overlapping 4x4 tiles, each tile and each 3x3 kernel are moved into a 4x4 transform domain, where the convolution
becomes 16 independent matrix products [tiles x C] @ [C x K], and the products come back as 2x2 output tiles
(Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016). On a CPU the res blocks of
pix2pixHD's generator (1024 channels at 1/16 of the image) are the bulk of a step, and oneDNN's direct
convolution is far from peak at their small spatial size; cuDNN already picks Winograd itself, so this is for CPU
runs only, and for inference only: the kernels are transformed once, when the weights are final (a training step
would have to transform them again after every update, which costs more than Winograd saves at these sizes).
fp32 products run on oneDNN (``mkldnn_linear``: the default BLAS takes its slower generic path on
some CPUs); bf16 ones on ``torch.matmul``, which already uses oneDNN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: The transforms of F(2x2, 3x3): B^T (input tiles), G (kernels), A^T (output tiles).
INPUT_T = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
KERNEL_T = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))
OUTPUT_T = ((1, 1, 1, 0), (0, 1, -1, -1))


def tile_matrix(rows: tuple[tuple[float, ...], ...], dtype: torch.dtype) -> torch.Tensor:
    """The 2-D transform X -> T X T^T of a flattened tile, as one matrix (T kron T): [out*out, in*in]."""
    t = torch.tensor(rows, dtype=torch.float64)
    return torch.kron(t, t).to(dtype)


def transform_kernels(weight: torch.Tensor) -> torch.Tensor:
    """[K, C, 3, 3] kernels -> [16, K, C] in the transform domain (G g G^T), in the weight's dtype."""
    out_channels, in_channels = weight.shape[:2]
    flat = weight.reshape(out_channels * in_channels, 9)
    return torch.matmul(tile_matrix(KERNEL_T, weight.dtype), flat.t()).view(16, out_channels, in_channels)


def _matmul_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N, P, C] @ [N, Q, C]^T -> [N, P, Q]; fp32 on oneDNN one product at a time, other dtypes batched."""
    if a.dtype != torch.float32 or not torch.backends.mkldnn.is_available():
        return torch.matmul(a, b.transpose(1, 2))
    return torch.stack([torch._C._nn.mkldnn_linear(a[i].contiguous().to_mkldnn(), b[i]).to_dense()
                        for i in range(a.shape[0])])


def winograd_conv3x3(x: torch.Tensor, kernels: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` for a 3x3 kernel, stride 1, no padding, by F(2x2, 3x3), given
    ``kernels = transform_kernels(weight)``. Under CPU autocast it computes in the autocast dtype, as the
    convolution would; the result is in channels-last memory format."""
    batch, channels, height, width = x.shape
    out_h, out_w = height - 2, width - 2
    tiles_h, tiles_w = (out_h + 1) // 2, (out_w + 1) // 2
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    with torch.autocast("cpu", enabled=False):
        nhwc = x.to(dtype).permute(0, 2, 3, 1)
        if out_h % 2 or out_w % 2:  # whole tiles only; the extra output row / column is cut off below
            nhwc = F.pad(nhwc, (0, 0, 0, out_w % 2, 0, out_h % 2))
        windows = nhwc.unfold(1, 4, 2).unfold(2, 4, 2)  # [B, th, tw, C, 4 (row), 4 (col)]
        windows = windows.permute(4, 5, 0, 1, 2, 3).reshape(16, -1)
        tiles = torch.matmul(tile_matrix(INPUT_T, dtype), windows).view(16, batch * tiles_h * tiles_w, channels)
        products = _matmul_nt(tiles, kernels.to(dtype))  # [16, P, K]
        out = torch.matmul(tile_matrix(OUTPUT_T, dtype), products.reshape(16, -1))  # [4 = 2x2, P * K]
        out = out.view(2, 2, batch, tiles_h, tiles_w, -1).permute(2, 3, 0, 4, 1, 5)
        out = out.reshape(batch, 2 * tiles_h, 2 * tiles_w, -1)
        if bias is not None:
            out = out + bias.to(dtype)
        return out[:, :out_h, :out_w].permute(0, 3, 1, 2)


#: Winograd pays on layers at least this wide (measured on a 2-core AVX512-BF16 EPYC, bf16: 1024 channels at 8x16
#: 1.45x, 512 at 32x64 1.24x, 256 at 64x128 0.38x; docs/benchmarks.md): pix2pixHD's 1024-wide res blocks.
MIN_CHANNELS = 512


class Conv3x3(nn.Conv2d):
    """An ``nn.Conv2d`` 3x3, stride 1, no padding (the res blocks pad by reflection first) that can run by Winograd
    on the CPU; state-dict keys are those of nn.Conv2d. It runs directly unless ``use_winograd`` was called (the
    runtime does so for ``--conv_algorithm``, ``synth.runtime.cast_for_inference``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=3)
        self.kernels: torch.Tensor | None = None

    def use_winograd(self) -> bool:
        """Keep the weight transformed for Winograd (16/9 of its size, in its dtype) and run by it from now on, if
        the layer is wide enough for it to pay (``MIN_CHANNELS``); for inference, once the weights are final (after
        loading and any dtype cast). Returns whether it will."""
        if min(self.in_channels, self.out_channels) < MIN_CHANNELS:
            return False
        with torch.no_grad():
            self.kernels = transform_kernels(self.weight)  # exact coefficients; one rounding in bf16 too
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernels is None or x.device.type != "cpu" or torch.onnx.is_in_onnx_export():
            return super().forward(x)
        if torch.is_grad_enabled() and self.weight.requires_grad:
            raise RuntimeError("Conv3x3: prepared for inference by use_winograd (its transformed kernels would not "
                               "follow weight updates); run it under torch.inference_mode() or torch.no_grad()")
        return winograd_conv3x3(x, self.kernels, self.bias)
