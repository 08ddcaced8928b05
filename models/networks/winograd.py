"""3x3 stride-1 convolutions by Winograd's F(2x2, 3x3) algorithm, for the CPU.

The same convolution as ``F.conv2d`` (to fp32 rounding), with 2.25x fewer multiplications: the input is cut into
overlapping 4x4 tiles, each tile and each 3x3 kernel are moved into a 4x4 transform domain, where the convolution
becomes 16 independent matrix products [tiles x C] @ [C x K], and the products come back as 2x2 output tiles
(Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016). On a CPU the res blocks of
pix2pixHD's generator (1024 channels at 1/16 of the image) are the bulk of a step. cuDNN already picks Winograd
itself, so this is for CPU runs only. For inference the kernels are transformed once, when the weights are final
(``winograd_conv3x3``), or, where keeping them would cost too much memory (fp32), again at every call
(``winograd_conv3x3_per_call``); for training (``WinogradConv3x3``) they are transformed at every call and
backward runs the exact adjoints (docs/benchmarks.md says where each pays). fp32 products run on oneDNN where the
CPU has AVX-512 and is not Intel's (``fp32_products_by_onednn``), and for prepared inference on every CPU; the
others on ``torch.matmul``. Layers that train directly can take their weight gradient as one matrix product
(``SplitBackwardConv3x3``: on AMX, where oneDNN's is slow).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

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
    """[K, C, 3, 3] kernels -> [16, K, C] in the transform domain (G g G^T), in the weight's dtype; fp32 by oneDNN
    where its products are (``fp32_products_by_onednn``: 3.0 against 3.5 ms per 512 x 1024 block on Zen 4)."""
    out_channels, in_channels = weight.shape[:2]
    flat = weight.reshape(out_channels * in_channels, 9)
    kernel_t = tile_matrix(KERNEL_T, weight.dtype)
    if weight.dtype == torch.float32 and weight.device.type == "cpu" and fp32_products_by_onednn():
        return _onednn_mm(kernel_t, flat.t()).view(16, out_channels, in_channels)
    return torch.matmul(kernel_t, flat.t()).view(16, out_channels, in_channels)


def transform_kernel_gradients(block: torch.Tensor, channels: int) -> torch.Tensor:
    """The transpose of ``transform_kernels``: [16, k, C] transform-domain gradients -> [k, C, 3, 3] (G^T u G).
    In 16-bit dtypes the product is formed as [k C, 9] so that writing it into the weight's gradient is a plain
    copy (the [9, k C] product's transposed write took twice as long, ~1 ms per 256 x 1024 block on Zen 4); in
    fp32 the [9, k C] product is the faster one."""
    kernel_t = tile_matrix(KERNEL_T, block.dtype)  # [16, 9]
    flat = block.view(16, -1)
    if block.dtype.itemsize <= 2:
        return torch.matmul(flat.t(), kernel_t).view(block.shape[1], channels, 3, 3)
    return torch.matmul(kernel_t.t(), flat).t().reshape(block.shape[1], channels, 3, 3)


def _onednn_available() -> bool:
    """Whether torch was built with oneDNN's matrix product for dense tensors (x86 builds)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _intel_cpu() -> bool:
    """Whether the CPU is an Intel one (``vendor_id`` in /proc/cpuinfo; False where that cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            return any(line.startswith("vendor_id") and "GenuineIntel" in line for line in info)
    except OSError:
        return False


@functools.cache
def fp32_products_by_onednn() -> bool:
    """Whether this CPU's fp32 matrix products run on oneDNN (``_linear_pointwise``) rather than the default BLAS:
    where torch runs AVX-512 kernels on a CPU that is not Intel's. On Zen 5 MKL takes its AVX2 path, 150-175 GFLOP/s
    against oneDNN's 290-400 at the res blocks' shapes; on an AVX2-only EPYC MKL was 13-26 % faster, and on an AMX
    Xeon, where MKL runs AVX-512, 1.14-1.5x faster (the fp32 Winograd step 1.07x; docs/benchmarks.md)."""
    return _onednn_available() and torch.backends.cpu.get_cpu_capability() == "AVX512" and not _intel_cpu()


def _onednn_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[M, K] @ [K, N] in fp32 by oneDNN, any strides (its ``a @ w^T``, with ``w = b^T``)."""
    return torch.ops.mkldnn._linear_pointwise(a, b.t(), None, "none", [], "")


def batched_products(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None,
                     onednn: bool | None = None) -> torch.Tensor:
    """[N, M, K] @ [N, K, L] -> [N, M, L] (any strides; into ``out`` if given): fp32 by oneDNN one product at a time
    where ``onednn`` (default: ``fp32_products_by_onednn()``), otherwise ``torch.matmul`` (16-bit dtypes run on
    oneDNN there already)."""
    if a.dtype != torch.float32 or not (fp32_products_by_onednn() if onednn is None else onednn):
        return torch.matmul(a, b) if out is None else torch.matmul(a, b, out=out)
    if out is None:  # each product is written while it is in cache (torch.stack of the 16 was a pass more)
        out = a.new_empty(a.shape[0], a.shape[1], b.shape[2])
    for i in range(a.shape[0]):
        out[i] = _onednn_mm(a[i], b[i])
    return out


def _matmul_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N, P, C] @ [N, Q, C]^T -> [N, P, Q] for prepared inference: fp32 on oneDNN on every CPU with it (the default
    BLAS takes its slower generic path on some CPUs), other dtypes batched."""
    return batched_products(a, b.transpose(1, 2), onednn=_onednn_available())


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a convolution of ``x`` computes in here: the CPU autocast dtype when autocast is on."""
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype


def _padded_nhwc(x: torch.Tensor, dtype: torch.dtype,
                 padding: int = 0) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """[B, C, H, W] -> the input as [B, H', W', C] in ``dtype`` with ``padding`` zeros around it (a convolution's
    ``padding``) and, for an odd output size, one more row / column to make whole tiles (cut off later); and the
    sizes (out_h, out_w, tiles_h, tiles_w)."""
    _, _, height, width = x.shape
    out_h, out_w = height + 2 * padding - 2, width + 2 * padding - 2
    nhwc = x.to(dtype).permute(0, 2, 3, 1)
    if padding or out_h % 2 or out_w % 2:
        nhwc = F.pad(nhwc, (0, 0, padding, padding + out_w % 2, padding, padding + out_h % 2))
    return nhwc, (out_h, out_w, (out_h + 1) // 2, (out_w + 1) // 2)


def _tiles(nhwc: torch.Tensor) -> torch.Tensor:
    """[B, 2 th + 2, 2 tw + 2, C] -> its overlapping 4x4 tiles in the transform domain, [16, B x th x tw, C]:
    B^T d B as four subtractions along the rows and four along the columns, on strided views of the map. The
    [16, 16] product of the tiles' permuted copy took 1.4-2x as long in bf16 and 1.6-4x in fp32 (oneDNN's and the
    default BLAS's products are slow at an inner size of 16); one more rounding in 16-bit dtypes."""
    batch, height, width, channels = nhwc.shape
    tiles_h, tiles_w = (height - 2) // 2, (width - 2) // 2
    by_rows = nhwc.new_empty(4, batch, tiles_h, width, channels)  # B^T along the rows of each tile
    _input_transform([nhwc[:, i:i + 2 * tiles_h:2] for i in range(4)], by_rows)
    out = nhwc.new_empty(4, 4, batch, tiles_h, tiles_w, channels)  # then along its columns
    _input_transform([by_rows[:, :, :, j:j + 2 * tiles_w:2] for j in range(4)], out.transpose(0, 1))
    return out.view(16, -1, channels)


def _input_transform(d: list[torch.Tensor], out: torch.Tensor) -> None:
    """``out[a] = sum_i B^T[a, i] d[i]`` for the four rows of ``INPUT_T``: d0 - d2, d1 + d2, d2 - d1, d1 - d3."""
    torch.sub(d[0], d[2], out=out[0])
    torch.add(d[1], d[2], out=out[1])
    torch.sub(d[2], d[1], out=out[2])
    torch.sub(d[1], d[3], out=out[3])


def _add_input_transform_adjoint(grad: torch.Tensor, out: torch.Tensor, accumulate: bool = False) -> None:
    """The adjoint of ``_input_transform`` along one axis, overlaps summed: ``grad`` [4 (a), ..., n, C] are the
    gradients of the transformed values at n tiles, ``out`` [..., 2 n + 2, C] those of the map they were cut from,
    tile x covering positions 2x .. 2x + 3: ``out[2x + i] += sum_a B^T[a, i] grad[a][x]``, that is +g0 at 2x,
    g1 - g2 + g3 at 2x + 1, g1 + g2 - g0 at 2x + 2 and -g3 at 2x + 3. ``out`` is overwritten unless ``accumulate``."""
    n = grad.shape[-2]
    even, odd = out[..., 0::2, :], out[..., 1::2, :]  # n + 1 positions each
    first_even, first_odd = even[..., :n, :], odd[..., :n, :]
    if accumulate:
        first_even += grad[0]
        first_odd += grad[1]
    else:
        even[..., n, :].zero_()
        odd[..., n, :].zero_()
        first_even.copy_(grad[0])
        first_odd.copy_(grad[1])
    first_odd -= grad[2]
    first_odd += grad[3]
    odd[..., 1:, :] -= grad[3]
    later_even = even[..., 1:, :]
    later_even += grad[1]
    later_even += grad[2]
    later_even -= grad[0]


def _folds_elementwise(dtype: torch.dtype) -> bool:
    """Whether ``_add_tile_gradients`` takes the tiles' gradients back to the map element-wise (fp32 and wider:
    1.5x faster than the product and ``_add_folded`` on VGG19's maps, as fast on the res blocks') rather than by the
    [16, 16] product and four strided adds (16-bit dtypes: in-place ops into bf16 maps took 1.4-4x as long)."""
    return dtype.itemsize >= 4


def _add_tile_gradients(grad_tiles: torch.Tensor, out: torch.Tensor) -> None:
    """The adjoint of ``_tiles``: add the gradients of the transformed tiles [16, B x th x tw, C] into the map's
    ``out`` [B, 2 th + 2, 2 tw + 2, C] (overlaps summed). In fp32 and wider (``_folds_elementwise``) by the input
    transform's adjoint along the columns into a buffer in fp32 or wider, then along the rows into ``out``; in
    16-bit dtypes by the [16, 16] product and ``_add_folded``."""
    batch, height, width, channels = out.shape
    tiles_h, tiles_w = (height - 2) // 2, (width - 2) // 2
    if not _folds_elementwise(grad_tiles.dtype):
        windows = torch.matmul(tile_matrix(INPUT_T, grad_tiles.dtype).t(), grad_tiles.view(16, -1))  # [16, P * C]
        _add_folded(out, windows, tiles_h, tiles_w)
        return
    grad = grad_tiles.view(4, 4, batch, tiles_h, tiles_w, channels)
    by_rows = grad_tiles.new_empty(4, batch, tiles_h, width, channels,
                                   dtype=torch.promote_types(grad_tiles.dtype, torch.float32))
    _add_input_transform_adjoint(grad.transpose(0, 1), by_rows)  # along the columns, for each row a
    _add_input_transform_adjoint(by_rows.transpose(2, 3), out.transpose(1, 2), accumulate=True)  # along the rows


def _input_tiles(x: torch.Tensor, dtype: torch.dtype,
                 padding: int = 0) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """[B, C, H, W] -> the transformed 4x4 input tiles [16, P, C] (P = B x tiles), and (out_h, out_w, th, tw), for
    ``padding`` zeros around the input (done in the same copy)."""
    nhwc, sizes = _padded_nhwc(x, dtype, padding)
    return _tiles(nhwc), sizes


def _output_nhwc(products: torch.Tensor, batch: int, tiles_h: int, tiles_w: int) -> torch.Tensor:
    """The products [16, P, K] back as whole 2x2 output tiles, [B, 2 th, 2 tw, K]."""
    out = torch.matmul(tile_matrix(OUTPUT_T, products.dtype), products.reshape(16, -1))  # [4 = 2x2, P * K]
    out = out.view(2, 2, batch, tiles_h, tiles_w, -1).permute(2, 3, 0, 4, 1, 5)
    return out.reshape(batch, 2 * tiles_h, 2 * tiles_w, -1)


def _finish_output(out: torch.Tensor, sizes: tuple[int, int, int, int], bias: torch.Tensor | None) -> torch.Tensor:
    """[B, 2 th, 2 tw, K] -> the [B, K, out_h, out_w] output (channels-last memory), plus bias."""
    out = out[:, :sizes[0], :sizes[1]].permute(0, 3, 1, 2)
    if bias is not None:  # a new tensor, not a view (an in-place ReLU may follow)
        out = out + bias.to(out.dtype).view(1, -1, 1, 1)
    return out


def _output_tiles(products: torch.Tensor, batch: int, sizes: tuple[int, int, int, int],
                  bias: torch.Tensor | None) -> torch.Tensor:
    """The products [16, P, K] back as the [B, K, out_h, out_w] output (channels-last memory), plus bias."""
    return _finish_output(_output_nhwc(products, batch, sizes[2], sizes[3]), sizes, bias)


def winograd_conv3x3(x: torch.Tensor, kernels: torch.Tensor, bias: torch.Tensor | None = None,
                     padding: int = 0) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding)`` for a 3x3 kernel, stride 1, by F(2x2, 3x3), given
    ``kernels = transform_kernels(weight)``. Under CPU autocast it computes in the autocast dtype, as the
    convolution would; the result is in channels-last memory format."""
    dtype = _compute_dtype(x)
    with torch.autocast("cpu", enabled=False):
        tiles, sizes = _input_tiles(x, dtype, padding)
        products = _matmul_nt(tiles, kernels.to(dtype))  # [16, P, K]
        return _output_tiles(products, x.shape[0], sizes, bias)


#: Output channels whose kernels are transformed at a time in fp32 training and per-call inference (16 x 512 x 1024
#: fp32: 34 MB of a layer's 67 MB), so a step's peak memory holds no whole layer of transformed kernels. 512 rather
#: than 256 halves the products (and their writes into the output) per layer: an fp32 step at 512x256 1.05x faster on
#: Zen 5; a whole layer was 1.03x faster again but raised the step's peak by 150-200 MB (docs/benchmarks.md).
KERNEL_BLOCK = 512

#: The same in 16-bit dtypes, where training keeps every block of a layer from forward for backward anyway
#: (``_keeps_kernels``): pix2pixHD's 1024-wide res blocks in one block, half the products and kernel transforms of
#: blocks of 512 (a bf16 step at 512x256 1.035x faster on Zen 4, docs/benchmarks.md).
KERNEL_BLOCK_16BIT = 1024


def _block_size(dtype: torch.dtype) -> int:
    """Output channels per block of kernels in ``dtype`` (``KERNEL_BLOCK``, ``KERNEL_BLOCK_16BIT``)."""
    return KERNEL_BLOCK_16BIT if dtype.itemsize <= 2 else KERNEL_BLOCK


def _kernel_blocks(weight: torch.Tensor, dtype: torch.dtype) -> Iterator[tuple[int, torch.Tensor]]:
    """(first output channel, ``transform_kernels`` of the block) for blocks of ``_block_size(dtype)`` output
    channels of ``weight``, in ``dtype``. The weight is cast first, as autocast's convolution casts it, and
    transformed in ``dtype`` (products summed in fp32, one rounding): a bf16 block costs half the memory traffic of
    an fp32 transform followed by a cast, the largest cost of a bf16 layer after its products."""
    size = _block_size(dtype)
    for start in range(0, weight.shape[0], size):
        yield start, transform_kernels(weight[start:start + size].to(dtype))


def _keeps_kernels(dtype: torch.dtype) -> bool:
    """Whether training keeps a layer's transformed kernels from forward for backward: in 16-bit dtypes (16/9 of
    the weight in bf16, 32 MB for a 1024-wide layer, 0.6 GB for pix2pixHD's 18, which leaves a step's peak under
    the reference's); in fp32 (1.2 GB) they are transformed again."""
    return dtype.itemsize <= 2


def _retakes_tiles(dtype: torch.dtype) -> bool:
    """Whether training saves a layer's input rather than its tiles, 4x the size, and takes them again in backward:
    in fp32, where the element-wise tiles cost 1.4 ms a res block at 512x256 against 5.9 MB less kept each (106 MB
    over pix2pixHD's 18); 16-bit dtypes keep their tiles (unmeasured there)."""
    return dtype == torch.float32


def _add_folded(out: torch.Tensor, windows: torch.Tensor, tiles_h: int, tiles_w: int) -> None:
    """Add the [16 (4x4), P * C] gradients of overlapping 4x4 tiles into ``out`` [B, 2 th + 2, 2 tw + 2, C] (rows
    of a contiguous NHWC map): each 4x4 tile is 2x2 blocks of 2x2 pixels, block (a, b) of tile (y, x) on block
    (y + a, x + b) of the image, so four strided adds do it (F.fold took 8 times as long)."""
    batch, channels = out.shape[0], out.shape[-1]
    blocks = windows.view(2, 2, 2, 2, batch, tiles_h, tiles_w, channels).permute(0, 2, 4, 5, 1, 6, 3, 7)
    out = out.view(batch, tiles_h + 1, 2, tiles_w + 1, 2, channels)
    for a in range(2):
        for b in range(2):
            out[:, a:a + tiles_h, :, b:b + tiles_w] += blocks[a, b]


def _block_products(tiles: torch.Tensor, blocks: Iterable[tuple[int, torch.Tensor]], out_channels: int) -> torch.Tensor:
    """The products [16, P, K] of the input tiles [16, P, C] with kernels given block by block of output channels,
    each block written straight into its columns (no list of blocks to concatenate)."""
    products = tiles.new_empty(tiles.shape[0], tiles.shape[1], out_channels)
    for start, kernels in blocks:
        batched_products(tiles, kernels.transpose(1, 2), out=products[:, :, start:start + kernels.shape[1]])
    return products


def winograd_conv3x3_per_call(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                              padding: int = 0) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding)`` (3x3, stride 1) by F(2x2, 3x3) with the kernels transformed
    from ``weight`` at this call, block by block of output channels, and nothing kept: inference without the 16/9
    of the weights that prepared kernels hold (1.2 GB for pix2pixHD's res blocks in fp32). No gradients."""
    dtype = _compute_dtype(x)
    with torch.autocast("cpu", enabled=False):
        tiles, sizes = _input_tiles(x, dtype, padding)
        products = _block_products(tiles, _kernel_blocks(weight, dtype), weight.shape[0])
        return _output_tiles(products, x.shape[0], sizes, bias)


class WinogradConv3x3(torch.autograd.Function):
    """``F.conv2d(x, weight, bias)`` (3x3, stride 1, no padding) by F(2x2, 3x3), differentiable, for training: the
    kernels are transformed from the current weight at every call, and backward is the exact adjoint of each step
    (products by matrix products, the input gradient folded back from overlapping tiles, the weight gradient by
    the kernel transform's transpose). Computes in the CPU autocast dtype when autocast is on; gradients come back
    in the dtypes of ``x`` and ``weight``. Saves the input tiles and the weight, as a direct convolution saves its
    input and weight."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        dtype = _compute_dtype(x)
        with torch.autocast("cpu", enabled=False):
            tiles, sizes = _input_tiles(x, dtype)  # [16, P, C]
            blocks = list(_kernel_blocks(weight, dtype)) if _keeps_kernels(dtype) else None
            products = _block_products(tiles, blocks or _kernel_blocks(weight, dtype), weight.shape[0])
            out = _output_tiles(products, x.shape[0], sizes, bias)
        # In fp32 the kernels are transformed again in backward rather than kept (16/9 of each layer's weight per
        # step would add 1.2 GB to a pix2pixHD step's peak; one more transform costs ~9 ms per layer), and block by
        # block of output channels, so no whole layer's transformed kernels exist at once. The input tiles are
        # taken again in backward too (``_retakes_tiles``): they are 4x the input.
        ctx.save_for_backward(x if _retakes_tiles(dtype) else tiles, weight,
                              *(kernels for _, kernels in blocks or ()))
        ctx.sizes, ctx.input_shape = sizes, x.shape
        ctx.dtypes = (x.dtype, weight.dtype)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        tiles, weight, *kept = ctx.saved_tensors
        channels = ctx.input_shape[1]
        if tiles.dim() == 4:  # the input, saved in place of its tiles
            tiles = _input_tiles(tiles, torch.float32)[0]
        dtype = tiles.dtype
        # by output channel, [16, K, P]: the weight gradient's operand as it is, the input gradient's transposed
        by_channel = _channel_product_gradients(grad_out, ctx.sizes, dtype)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_tiles = None  # [16, P, C], summed over the blocks of output channels
            size = _block_size(dtype)
            starts = range(0, weight.shape[0], size)
            for start, kernels in zip(starts, kept, strict=True) if kept else _kernel_blocks(weight, dtype):
                part = batched_products(by_channel[:, start:start + size].transpose(1, 2), kernels)
                grad_tiles = part if grad_tiles is None else grad_tiles.add_(part)
            grad_x = _input_gradient(grad_tiles, ctx.sizes, ctx.input_shape, 0, ctx.dtypes[0]).to(ctx.dtypes[0])
        if ctx.needs_input_grad[1]:
            # In the compute dtype throughout, as autocast's convolution gives a bf16 weight gradient (products
            # summed in fp32, rounded once per matrix product), then written in the weight's dtype.
            grad_weight = torch.empty_like(weight, dtype=ctx.dtypes[1])
            size = _block_size(dtype)
            for start in range(0, weight.shape[0], size):
                block = batched_products(by_channel[:, start:start + size], tiles)  # [16, k, C]
                grad_weight[start:start + size] = transform_kernel_gradients(block, channels)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum((0, 2, 3), dtype=torch.promote_types(ctx.dtypes[1], torch.float32))
        return grad_x, grad_weight, grad_bias


def _padded_gradient(grad_out: torch.Tensor, sizes: tuple[int, int, int, int], dtype: torch.dtype) -> torch.Tensor:
    """The output's gradient [B, K, out_h, out_w] as [B, 2 th, 2 tw, K] in ``dtype`` (zero rows / columns for the
    tiles' extra ones)."""
    out_h, out_w = sizes[:2]
    grad = grad_out.to(dtype).permute(0, 2, 3, 1)  # [B, out_h, out_w, K]
    if out_h % 2 or out_w % 2:
        grad = F.pad(grad, (0, 0, 0, out_w % 2, 0, out_h % 2))
    return grad


def _gradient_products(grad: torch.Tensor) -> torch.Tensor:
    """[B, 2 th, 2 tw, K] output gradients -> the gradients of the transform-domain products [16, B th tw, K] (the
    adjoint of ``_output_nhwc``)."""
    batch, height, width, out_channels = grad.shape
    grad = grad.reshape(batch, height // 2, 2, width // 2, 2, -1).permute(2, 4, 0, 1, 3, 5).reshape(4, -1)
    return torch.matmul(tile_matrix(OUTPUT_T, grad.dtype).t(), grad).view(16, -1, out_channels)


def _channel_product_gradients(grad_out: torch.Tensor, sizes: tuple[int, int, int, int],
                               dtype: torch.dtype) -> torch.Tensor:
    """The gradient of the output [B, K, out_h, out_w] as gradients of the transform-domain products (the adjoint of
    ``_output_tiles``), in ``dtype``, by output channel: [16, K, P]. The weight gradient's products take it as it
    is and the input gradient's transposed, so no transposed copy of a [16, P, K] layout is made (2.3 ms per res
    block at 512x256 in bf16 on Zen 4)."""
    out_h, out_w, tiles_h, tiles_w = sizes
    grad = grad_out.to(dtype)
    if out_h % 2 or out_w % 2:
        grad = F.pad(grad, (0, out_w % 2, 0, out_h % 2))
    batch, out_channels = grad.shape[:2]
    if grad.is_contiguous():  # [B, K, th, 2, tw, 2] -> [2, 2, K, B, th, tw]
        grad = grad.view(batch, out_channels, tiles_h, 2, tiles_w, 2).permute(3, 5, 1, 0, 2, 4)
    else:  # from channels-last memory: [B, th, 2, tw, 2, K] -> the same
        grad = grad.permute(0, 2, 3, 1).reshape(batch, tiles_h, 2, tiles_w, 2, -1).permute(2, 4, 5, 0, 1, 3)
    grad = grad.reshape(4, -1)
    return torch.matmul(tile_matrix(OUTPUT_T, dtype).t(), grad).view(16, out_channels, -1)


def _input_gradient(grad_tiles: torch.Tensor, sizes: tuple[int, int, int, int], input_shape: torch.Size,
                    padding: int, dtype: torch.dtype) -> torch.Tensor:
    """The gradients of the transformed input tiles [16, P, C] as the input's gradient [B, C, H, W] (channels-last
    memory; the adjoint of ``_input_tiles``: tiles folded back, the padding cut off), in ``dtype`` where the fold is
    element-wise, in the tiles' dtype otherwise."""
    _, _, tiles_h, tiles_w = sizes
    batch, channels, height, width = input_shape
    # the fold in ``dtype`` where it is element-wise (exact sums), in the tiles' dtype otherwise (as before)
    folded = grad_tiles.new_zeros(batch, 2 * tiles_h + 2, 2 * tiles_w + 2, channels,
                                  dtype=dtype if _folds_elementwise(grad_tiles.dtype) else grad_tiles.dtype)
    _add_tile_gradients(grad_tiles, folded)
    return folded.permute(0, 3, 1, 2)[:, :, padding:padding + height, padding:padding + width]


#: A frozen layer's tiles exist a band of tile rows at a time, at most about this many bytes of them per band:
#: VGG19's 256-wide layers at 512x256 would otherwise hold 4 x 33 MB at once in forward and backward, and a
#: training step's peak memory rose by 250 MB (docs/benchmarks.md).
BAND_BYTES = 2 ** 23


def _bands(sizes: tuple[int, int, int, int], batch: int, channels: int, dtype: torch.dtype) -> list[tuple[int, int]]:
    """(first, end) tile rows of the bands that keep [16, tiles, channels] under ``BAND_BYTES``."""
    tiles_h, tiles_w = sizes[2:]
    rows = max(1, BAND_BYTES // (16 * batch * tiles_w * channels * dtype.itemsize))
    return [(start, min(tiles_h, start + rows)) for start in range(0, tiles_h, rows)]


class FrozenWinogradConv3x3(torch.autograd.Function):
    """``F.conv2d(x, weight, bias, padding=padding)`` (3x3, stride 1) by F(2x2, 3x3) with kernels transformed once
    (``transform_kernels``) of a frozen layer, differentiable in ``x`` only: a fixed network that gradients pass
    through, as VGG19 in the perceptual loss. Works through the map in bands of tile rows (``BAND_BYTES``) and saves
    nothing but the kernels it was given."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernels: torch.Tensor, bias: torch.Tensor | None,
                padding: int) -> torch.Tensor:
        dtype = _compute_dtype(x)
        with torch.autocast("cpu", enabled=False):
            nhwc, sizes = _padded_nhwc(x, dtype, padding)
            # products as in training (on an AVX2 EPYC the default BLAS was 13-26 % faster than oneDNN)
            kernels_t = kernels.to(dtype).transpose(1, 2)
            out = nhwc.new_empty(x.shape[0], 2 * sizes[2], 2 * sizes[3], kernels.shape[1])
            for first, end in _bands(sizes, x.shape[0], max(kernels.shape[1:]), dtype):
                products = batched_products(_tiles(nhwc[:, 2 * first:2 * end + 2]), kernels_t)
                out[:, 2 * first:2 * end] = _output_nhwc(products, x.shape[0], end - first, sizes[3])
            out = _finish_output(out, sizes, bias)
        if out._is_view():  # (no bias) autograd forbids in-place changes of a view made in a Function
            out = out.clone(memory_format=torch.channels_last)
        ctx.save_for_backward(kernels)
        ctx.sizes, ctx.input_shape, ctx.padding, ctx.dtype = sizes, x.shape, padding, (dtype, x.dtype)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (kernels,) = ctx.saved_tensors
        dtype, x_dtype = ctx.dtype
        batch, channels, height, width = ctx.input_shape
        sizes, padding = ctx.sizes, ctx.padding
        kernels = kernels.to(dtype)
        grad = _padded_gradient(grad_out, sizes, dtype)  # [B, 2 th, 2 tw, K]
        folded = grad.new_zeros(batch, 2 * sizes[2] + 2, 2 * sizes[3] + 2, channels)
        for first, end in _bands(sizes, batch, max(kernels.shape[1:]), dtype):
            grad_tiles = batched_products(_gradient_products(grad[:, 2 * first:2 * end]), kernels)  # [16, P band, C]
            _add_tile_gradients(grad_tiles, folded[:, 2 * first:2 * end + 2])
        grad_x = folded.permute(0, 3, 1, 2)[:, :, padding:padding + height, padding:padding + width]
        return grad_x.to(x_dtype), None, None, None


def matmul_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                   padding: int = 0) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding)`` (3x3, stride 1) as one matrix product of the weight as it is
    stored, [K, 9 C], with the input's 3x3 columns (``F.unfold``), differentiable by autograd, in the CPU autocast
    dtype when autocast is on. For training on small maps: oneDNN's direct convolution reorders each weight into
    its blocked layout three times a step (forward, and both gradients), the product takes it as it is (a 1024-wide
    res block at 8x16 trains 1.14x faster in bf16 on Zen 4). The columns are taken in fp32 or wider, so the input
    gradient's sums of nine overlapping columns are rounded once, as a direct convolution's are; the bias is added
    after the product's rounding."""
    batch, _, height, width = x.shape
    columns = F.unfold(x.to(torch.promote_types(x.dtype, torch.float32)), 3, padding=padding)  # [B, 9 C, P]
    # One [K, 9 C] @ [9 C, B P] product (a view for B = 1): torch.matmul of a matrix with a batch of them computes
    # the transposed product, whose weight gradient comes back transposed, and casting that to the fp32 gradient
    # was a strided copy of 9 M elements per layer (~15 ms each in a 256x128 step).
    columns = columns.transpose(0, 1).reshape(columns.shape[1], -1)
    out = torch.mm(weight.view(weight.shape[0], -1), columns)  # [K, B P]; autocast casts both
    if bias is not None:
        out = out + bias.to(out.dtype).view(-1, 1)
    out_h, out_w = height + 2 * padding - 2, width + 2 * padding - 2
    return out.view(-1, batch, out_h, out_w).transpose(0, 1)


def _columns(x: torch.Tensor, padding: int = 0) -> torch.Tensor:
    """``x``'s 3x3 columns as [9 C, B P] (``F.unfold``'s order, the batch folded into the pixels) by one copy of
    strided views: 10x faster than ``F.unfold`` on a 1024-wide map at 16x32 (0.37 against 3.9 ms in bf16)."""
    if padding:
        x = F.pad(x, (padding,) * 4)
    windows = x.unfold(2, 3, 1).unfold(3, 3, 1)  # [B, C, H', W', 3, 3]
    return windows.permute(1, 4, 5, 0, 2, 3).reshape(9 * x.shape[1], -1)


class SplitBackwardConv3x3(torch.autograd.Function):
    """``F.conv2d`` 3x3, stride 1, whose backward asks oneDNN for the input gradient alone and computes the weight
    gradient as one matrix product of the output gradient with the input's columns: oneDNN's weight gradient of
    the 1024-wide res blocks is slow (on an AMX Xeon, the whole backward at 16x32 1.6x faster in bf16, 1.2x in fp32;
    docs/benchmarks.md). Same saved tensors as the direct convolution; the columns exist only in backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                padding: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        padding = ctx.padding
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(grad_out, x, weight, None, [1, 1], [padding, padding],
                                                         [1, 1], False, [0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            flat = grad_out.transpose(0, 1).reshape(weight.shape[0], -1)  # [K, B P]: a view for B = 1
            grad_weight = torch.mm(flat, _columns(x, padding).t()).view_as(weight)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias, None


def split_backward_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                           padding: int = 0) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding)`` (3x3, stride 1) trained by ``SplitBackwardConv3x3``, in the
    CPU autocast dtype when autocast is on (cast here, as autocast would, so the weight gradient comes back to the
    fp32 weight through the cast)."""
    dtype = _compute_dtype(x)
    return SplitBackwardConv3x3.apply(x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype),
                                      padding)


#: Under ``--conv_algorithm auto`` training and fp32 inference run by Winograd only on calls with at least this
#: many output pixels (batch x height x width; 16x32 is pix2pixHD's res blocks at 512x256): a bf16 step there took
#: 3.12 s against 3.67 direct, at 256x128 (8x16) 1.23 against 1.15; an fp32 step 7.65 against 8.99; fp32 inference
#: with kernels transformed per call 1.53 s against 1.75 at 512x256, 0.59 against 0.50 at 256x128
#: (docs/benchmarks.md).
AUTO_MIN_PIXELS = 512

#: Winograd pays on layers at least this wide (measured on a 2-core AVX512-BF16 EPYC, bf16: 1024 channels at 8x16
#: 1.45x, 512 at 32x64 1.24x, 256 at 64x128 0.38x; docs/benchmarks.md): pix2pixHD's 1024-wide res blocks.
MIN_CHANNELS = 512


def _retransform_kernels(layer: Conv3x3, _keys: object) -> None:
    """After ``load_state_dict``: kernels transformed from the old weight would be stale; transform the new one."""
    if layer.kernels is not None:
        with torch.no_grad():
            layer.kernels = transform_kernels(layer.weight)


class Conv3x3(nn.Conv2d):
    """An ``nn.Conv2d`` 3x3, stride 1, zero ``padding`` (none in the res blocks, which pad by reflection first; 1 in
    VGG19) that can run by Winograd on the CPU; state-dict keys are those of nn.Conv2d. It runs directly unless
    ``use_winograd`` was called (the runtime does so for ``--conv_algorithm``: ``synth.runtime.cast_for_inference``,
    ``use_training_algorithm``)."""

    def __init__(self, in_channels: int, out_channels: int, padding: int = 0) -> None:
        super().__init__(in_channels, out_channels, kernel_size=3, padding=padding)
        # a buffer (not saved: it follows from the weight), so .to(dtype / device) casts the kept kernels too
        self.kernels: torch.Tensor | None
        self.register_buffer("kernels", None, persistent=False)
        self.per_call = False
        self.min_pixels = 0
        self.small_maps_by_matmul = False
        self.split_backward = False
        self.register_load_state_dict_post_hook(_retransform_kernels)

    def _wide_enough(self, min_channels: int | None) -> bool:
        """Whether both channel counts are at least ``min_channels`` (default ``MIN_CHANNELS``), where the faster
        algorithms pay."""
        return min(self.in_channels, self.out_channels) >= (MIN_CHANNELS if min_channels is None else min_channels)

    def use_winograd(self, per_call: bool = False, min_pixels: int = 0, min_channels: int | None = None,
                     small_maps_by_matmul: bool = False) -> bool:
        """Run by Winograd from now on, if the layer is wide enough for it to pay (``min_channels``) and on calls
        with at least ``min_pixels`` output pixels (smaller ones run directly); ``min_channels`` defaults to
        ``MIN_CHANNELS``, measured for the res blocks. By default (inference, or a frozen
        layer, once the weights are final: after loading and any dtype cast) the weight is transformed once and
        kept (16/9 of its size, in its dtype); gradients then flow to the input only. ``per_call`` transforms it
        at every call instead, block by block (differentiably where gradients flow: training; without keeping
        anything otherwise: fp32 inference). ``small_maps_by_matmul``: training calls under ``min_pixels`` run as one
        matrix product (``matmul_conv3x3``) instead of directly when they compute in a 16-bit dtype (in fp32 the whole
        step was 6 % slower: the default BLAS's fp32 product). Returns whether it will."""
        if not self._wide_enough(min_channels):
            return False
        self.min_pixels = min_pixels
        self.small_maps_by_matmul = small_maps_by_matmul
        if per_call:
            self.per_call = True
            return True
        with torch.no_grad():
            self.kernels = transform_kernels(self.weight)  # exact coefficients; one rounding in bf16 too
        return True

    def use_split_backward(self, min_channels: int | None = None) -> bool:
        """Train directly, with the weight gradient as one matrix product (``SplitBackwardConv3x3``), if the layer is
        at least ``min_channels`` wide (default ``MIN_CHANNELS``). Returns whether it will."""
        if not self._wide_enough(min_channels):
            return False
        self.split_backward = True
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or torch.onnx.is_in_onnx_export():
            return super().forward(x)
        padding = self.padding[0]
        if ((self.kernels is None and not self.per_call)
                or x.shape[0] * (x.shape[2] + 2 * padding - 2) * (x.shape[3] + 2 * padding - 2) < self.min_pixels):
            return self._direct(x, padding)
        if self.kernels is not None:
            if not torch.is_grad_enabled():
                return winograd_conv3x3(x, self.kernels, self.bias, padding)
            if self.weight.requires_grad:
                raise RuntimeError("Conv3x3: prepared for inference by use_winograd (its transformed kernels would "
                                   "not follow weight updates); run it under torch.inference_mode() or "
                                   "torch.no_grad(), freeze the layer, or switch it with use_winograd(per_call=True)")
            return FrozenWinogradConv3x3.apply(x, self.kernels, self.bias, padding)
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            return WinogradConv3x3.apply(F.pad(x, (padding,) * 4) if padding else x, self.weight, self.bias)
        return winograd_conv3x3_per_call(x, self.weight, self.bias, padding)

    def _direct(self, x: torch.Tensor, padding: int) -> torch.Tensor:
        """A call not run by Winograd: where the weight trains, as one matrix product (``small_maps_by_matmul``, in
        16-bit dtypes) or with the split backward (``split_backward``); otherwise ``nn.Conv2d``'s."""
        if torch.is_grad_enabled() and self.weight.requires_grad:
            if self.small_maps_by_matmul and _compute_dtype(x).itemsize <= 2:
                return matmul_conv3x3(x, self.weight, self.bias, padding)
            if self.split_backward:
                return split_backward_conv3x3(x, self.weight, self.bias, padding)
        return super().forward(x)
