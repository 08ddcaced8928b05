"""pix2pixHD's discriminator feature-matching loss."""

from __future__ import annotations

import torch

from synth.models.losses.l1 import L1Distance


def feature_matching_loss(
    fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]], lambda_feat: float
) -> torch.Tensor:
    """L1 between D's features of fake and (detached) real, all layers but the logits (``F.l1_loss``'s, its
    gradient in the features' layout: ``L1Distance``).

    Weighted like pix2pixHD: 1/num_D per scale, 4/(n_layers_D + 1) per layer, times lambda_feat.
    """
    if len(fake) != len(real) or not fake:
        raise ValueError(f"feature matching needs as many scales for fake and real, got {len(fake)}, {len(real)}")
    scale_weight = 1.0 / len(fake)
    total = fake[0][0].new_zeros(())
    for fake_scale, real_scale in zip(fake, real, strict=True):
        if len(fake_scale) < 2:  # no intermediate features (--no_ganFeat_loss)
            continue
        layer_weight = 4.0 / (len(fake_scale) - 1)
        for fake_feat, real_feat in zip(fake_scale[:-1], real_scale[:-1], strict=True):
            total = total + scale_weight * layer_weight * L1Distance.apply(fake_feat, real_feat.detach())
    return total * lambda_feat
