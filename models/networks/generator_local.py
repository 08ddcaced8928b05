"""pix2pixHD's local enhancer: a global generator at half resolution refined by full-resolution branches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from synth.core.errors import CheckpointError
from synth.models.networks.blocks import ResnetBlock, downsample_stage, input_stem, output_head, upsample_stage
from synth.models.networks.generator_global import GlobalGenerator, dropout_of, one_hot_channels
from synth.models.networks.norm import norm_layer
from synth.models.registry import GENERATORS


class EnhancerBranch(nn.Module):
    """One enhancer: stem + down encode the finer input; blocks + up (+ head for the last) refine the sum."""

    def __init__(
        self, input_nc: int, output_nc: int, width: int, n_blocks: int, norm: str, with_head: bool,
        dropout: float = 0.0, label_channels: int = 0,
    ):
        super().__init__()
        make_norm = norm_layer(norm)
        self.stem = input_stem(input_nc, width, make_norm, label_channels)
        self.down = downsample_stage(width, make_norm)
        self.blocks = nn.Sequential(*[ResnetBlock(width * 2, norm, dropout) for _ in range(n_blocks)])
        self.up = upsample_stage(width * 2, make_norm)
        self.head = output_head(width, output_nc) if with_head else nn.Identity()

    def forward(self, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return self.head(self.up(self.blocks(self.down(self.stem(x)) + coarse)))


@GENERATORS.register("local")
class LocalEnhancer(nn.Module):
    """``global_net`` (a GlobalGenerator without head, ngf * 2**n_local_enhancers) plus ``enhancers[n]``.

    The global part runs on the input average-pooled n_local_enhancers times; enhancer n adds one octave. Only the
    last enhancer sees the full-resolution input, whose ``label_channels`` leading channels are one-hot.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 32,
        n_downsample_global: int = 3,
        n_blocks_global: int = 9,
        n_local_enhancers: int = 1,
        n_blocks_local: int = 3,
        norm: str = "instance",
        dropout: float = 0.0,
        label_channels: int = 0,
    ) -> None:
        super().__init__()
        self.n_local_enhancers = n_local_enhancers
        self.size_multiple = 2 ** (n_downsample_global + n_local_enhancers)
        global_ngf = ngf * 2**n_local_enhancers
        self.global_net = GlobalGenerator(
            input_nc, output_nc, global_ngf, n_downsample_global, n_blocks_global, norm, with_head=False,
            dropout=dropout,
        )
        self.enhancers = nn.ModuleList(
            EnhancerBranch(
                input_nc,
                output_nc,
                ngf * 2 ** (n_local_enhancers - n),
                n_blocks_local,
                norm,
                with_head=n == n_local_enhancers,
                dropout=dropout,
                label_channels=label_channels if n == n_local_enhancers else 0,  # only the last sees the labels
            )
            for n in range(1, n_local_enhancers + 1)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @classmethod
    def from_options(cls, opt: Any, input_nc: int) -> LocalEnhancer:
        """Build from parsed options (ngf, n_downsample_global, n_blocks_global, n_local_enhancers, ...)."""
        return cls(
            input_nc,
            opt.output_nc,
            opt.ngf,
            opt.n_downsample_global,
            opt.n_blocks_global,
            opt.n_local_enhancers,
            opt.n_blocks_local,
            opt.norm,
            dropout=dropout_of(opt),
            label_channels=one_hot_channels(opt),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(self.downsample(pyramid[-1]))
        out = self.global_net(pyramid[-1])
        for n, branch in enumerate(self.enhancers, start=1):
            out = branch(pyramid[self.n_local_enhancers - n], out)
        return out

    def global_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the global part (frozen for the first --niter_fix_global epochs)."""
        return self.global_net.parameters()

    def local_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the enhancer branches only."""
        return self.enhancers.parameters()

    def outermost_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the full-resolution enhancer only: what pix2pixHD trains during --niter_fix_global (with
        two or more enhancers, the global part and the inner enhancers stay fixed)."""
        return self.enhancers[-1].parameters()

    def load_global_generator(self, global_state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load a trained GlobalGenerator's state dict (ours) into the global part; its image head is dropped."""
        given = {
            key.removeprefix("module."): value
            for key, value in global_state_dict.items()
            if not key.removeprefix("module.").startswith("head.")
        }
        _check_state_dict(self.global_net.state_dict(), given)
        self.global_net.load_state_dict(given, strict=True)


def _check_state_dict(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> None:
    """CheckpointError naming the first missing, unexpected or mis-shaped key."""
    for key, value in expected.items():
        if key not in given:
            raise CheckpointError(f"global generator state dict lacks '{key}' (expected {tuple(value.shape)})")
        if given[key].shape != value.shape:
            raise CheckpointError(
                f"global generator key '{key}' has shape {tuple(given[key].shape)}, expected {tuple(value.shape)}"
            )
    for key in given:
        if key not in expected:
            raise CheckpointError(f"global generator state dict has unexpected key '{key}'")
