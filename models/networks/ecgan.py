"""ECGAN's networks (Tang et al., ICLR 2023, arXiv 2003.13898) on top of pix2pixHD's coarse-to-fine generator.

``ECGANGenerator``: the pix2pixHD generator without its image head is the shared encoder (layout S -> features F,
ngf channels at full resolution); an edge branch G_e and an image branch G_i halve the channels step by step, the
edge features gating the image features (attention-guided edge transfer); the semantic-preserving module G_s
re-weights class-dependent maps and produces the final image I''. ``LabelGenerator`` (G_l) maps I'' back to a label
map; ``ProjectionHead`` embeds pixel features for the contrastive loss.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from synth.core.errors import OptionError
from synth.models.networks.blocks import NormFactory, ReflectionPad2d, ResnetBlock, input_stem
from synth.models.networks.norm import norm_layer

EDGE_NC = 1  # one edge channel in [-1, 1]; it gates all image channels by broadcasting


def strip_image_head(net: nn.Module) -> nn.Module:
    """A pix2pixHD generator (global or local) with its last image head replaced by Identity: its output is then
    the trunk's ngf-channel feature map at input resolution."""
    if hasattr(net, "enhancers"):
        net.enhancers[-1].head = nn.Identity()
    elif hasattr(net, "head"):
        net.head = nn.Identity()
    else:
        raise OptionError(f"ECGAN needs a generator with an image head to replace, not {type(net).__name__}")
    return net


def conv3(in_channels: int, out_channels: int) -> nn.Sequential:
    """Reflection-padded 3x3 convolution (keeps any size, odd ones included)."""
    return nn.Sequential(ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, kernel_size=3))


def branch_widths(channels: int, steps: int) -> list[int]:
    """C, C/2, C/4, ... (steps + 1 widths, never below 2): the channels of G_e and G_i stage by stage."""
    return [max(channels >> k, 2) for k in range(steps + 1)]


def branch_stage(in_channels: int, out_channels: int, make_norm: NormFactory) -> nn.Sequential:
    """One step of G_e / G_i: conv3, norm, ReLU."""
    return nn.Sequential(conv3(in_channels, out_channels), make_norm(out_channels), nn.ReLU(inplace=True))


class SemanticPreserving(nn.Module):
    """G_s: [F, I'_e, I', S] -> conv to N class maps F_c; gamma = sigmoid(GAP(F_c)) (times the class-presence
    vector in the ablation variant); F'_c = F_c + F_c * gamma; convolutions back to the image I''."""

    def __init__(self, in_channels: int, n_classes: int, output_nc: int, class_presence: bool = False) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.class_presence = class_presence
        self.to_classes = conv3(in_channels, n_classes)
        self.to_image = nn.Sequential(
            nn.ReLU(inplace=False), conv3(n_classes, n_classes), nn.ReLU(inplace=True), conv3(n_classes, output_nc)
        )

    def forward(self, x: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
        maps = self.to_classes(x)
        gamma = torch.sigmoid(maps.mean(dim=(2, 3), keepdim=True))
        if self.class_presence:
            gamma = gamma * one_hot.amax(dim=(2, 3), keepdim=True).to(gamma.dtype)
        return torch.tanh(self.to_image(maps + maps * gamma))


class ECGANGenerator(nn.Module):
    """Shared encoder (pix2pixHD trunk) + G_e + G_i with attention-guided edge transfer + G_s.

    ``forward`` returns a dict: ``image`` (I'', or I' without G_s), ``intermediate`` (I'), ``edge`` (I'_e, with
    the edge branch) and ``features`` (F, for the contrastive loss). ``semantic_nc`` leading input channels are
    the layout S, the first ``n_classes`` of them its one-hot labels.
    """

    def __init__(
        self,
        trunk: nn.Module,
        channels: int,
        output_nc: int,
        semantic_nc: int,
        n_classes: int,
        *,
        steps: int = 3,
        norm: str = "instance",
        edge: bool = True,
        attention: bool = True,
        semantic_preserving: bool = True,
        class_presence: bool = False,
    ) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        widths = branch_widths(channels, steps)
        self.trunk = trunk
        self.size_multiple = int(getattr(trunk, "size_multiple", 1))
        self.semantic_nc, self.n_classes = semantic_nc, n_classes
        self.attention = edge and attention
        self.image_stages = nn.ModuleList(branch_stage(a, b, make_norm) for a, b in itertools.pairwise(widths))
        self.image_head = conv3(widths[-1], output_nc)
        if edge:
            self.edge_stages = nn.ModuleList(branch_stage(a, b, make_norm) for a, b in itertools.pairwise(widths))
            self.edge_head = conv3(widths[-1], EDGE_NC)
        if semantic_preserving:
            sp_in = channels + (EDGE_NC if edge else 0) + output_nc + semantic_nc
            self.semantic = SemanticPreserving(sp_in, n_classes, output_nc, class_presence)

    @property
    def has_edge(self) -> bool:
        return hasattr(self, "edge_stages")

    @property
    def has_semantic_preserving(self) -> bool:
        return hasattr(self, "semantic")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(x)
        out = {"features": features}
        image, edge = features, features
        for k, stage in enumerate(self.image_stages):
            image = stage(image)
            if self.has_edge:
                edge = self.edge_stages[k](edge)
                if self.attention:
                    image = image * torch.sigmoid(edge) + image  # F_i <- F_i * sigma(F_e) + F_i
        image_logits = self.image_head(image)
        if self.has_edge:
            edge_logits = self.edge_head(edge)
            out["edge"] = torch.tanh(edge_logits)
            if self.attention:  # I' = I'_i * sigma(I'_e) + I'_i, on the heads' pre-activations (output in [-1, 1])
                image_logits = image_logits * torch.sigmoid(edge_logits) + image_logits
        out["intermediate"] = torch.tanh(image_logits)
        out["image"] = out["intermediate"]
        if self.has_semantic_preserving:
            semantics = x[:, : self.semantic_nc]
            parts = [features, out["edge"]] if self.has_edge else [features]
            sp_input = torch.cat([*parts, out["intermediate"], semantics.to(features.dtype)], dim=1)
            out["image"] = self.semantic(sp_input, semantics[:, : self.n_classes])
        return out

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Everything but the trunk: G_e, G_i and G_s."""
        return (p for name, p in self.named_parameters() if not name.startswith("trunk."))

    def outermost_parameters(self) -> Iterator[nn.Parameter]:
        """The outermost local enhancer's and ECGAN's own parameters (pix2pixHD's --niter_fix_global stage)."""
        return itertools.chain(self.trunk.outermost_parameters(), self.head_parameters())

    def load_global_generator(self, global_state_dict: Mapping[str, torch.Tensor]) -> None:
        """Start the trunk's global part from a trained global generator (--load_pretrain)."""
        self.trunk.load_global_generator(global_state_dict)


class LabelGenerator(nn.Module):
    """G_l: image -> class logits at full resolution (stem, residual blocks, 1x1 conv; no striding, any size)."""

    def __init__(self, input_nc: int, n_classes: int, ngf: int = 32, n_blocks: int = 2, norm: str = "instance"):
        super().__init__()
        self.body = nn.Sequential(
            input_stem(input_nc, ngf, norm_layer(norm)), *[ResnetBlock(ngf, norm) for _ in range(n_blocks)]
        )
        self.classifier = nn.Conv2d(ngf, n_classes, kernel_size=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(image))


class ProjectionHead(nn.Module):
    """Two-layer MLP on sampled pixel features -> L2-normalised embeddings (as in cross-image pixel contrast)."""

    def __init__(self, in_channels: int, dim: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, in_channels), nn.ReLU(inplace=True), nn.Linear(in_channels, dim)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(features), dim=-1)
