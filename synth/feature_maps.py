"""pix2pixHD's 1024p texture pipeline (its ``precompute_feature_maps.py``): a trained feature run's encoder E turns
every training image into a map of per-instance features, saved in ``{dataroot}/{phase}_feat`` (format in
``synth.data.feature_maps``) for a higher-resolution run trained with ``--load_features``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from synth.core.errors import OptionError
from synth.data import create_dataset
from synth.data.datasets.base import LayoutDataset
from synth.data.feature_maps import feature_dir, write_feature_map
from synth.features import paint_features
from synth.inference import load_generator
from synth.models.networks.instance_pool import MAX_SEGMENT_ID, segment_sums
from synth.models.pix2pixhd_model import Pix2PixHDModel, generator_size_multiple

#: Encoding covers whole images: a mode's crop is dropped (its resize kept), as every instance needs a feature.
WHOLE_IMAGE_MODES = {"crop": "none", "resize_and_crop": "none", "scale_width_and_crop": "scale_width"}


def precompute_feature_maps(opt: argparse.Namespace, progress: bool = True) -> list[Path]:
    """Encode each image of ``opt.phase`` with the run's E and write its feature map at the label map's own size
    (each instance gets E's average over it at the encoding resolution; instances too small to survive the resize
    get zeros). Returns the files written."""
    model = load_generator(opt)
    if not getattr(model, "has_encoder", False):
        raise OptionError(
            f"{opt.name}: has no feature encoder E to precompute maps with (train it with --instance_feat "
            "or --label_feat, without --load_features)"
        )
    opt.resize_or_crop = WHOLE_IMAGE_MODES.get(opt.resize_or_crop, opt.resize_or_crop)
    opt.size_multiple = generator_size_multiple(opt)
    opt.need_feature_maps = False
    dataset = create_dataset(opt)
    if not dataset.has_images:
        raise OptionError(f"{opt.dataroot}: precomputing feature maps needs the real images of phase '{opt.phase}'")
    folder = feature_dir(opt.dataroot, opt.phase)
    written = []
    for index in tqdm(range(len(dataset)), desc="feature maps", unit="img", disable=not progress):
        key, feat = sample_feature_map(model, dataset, index)
        written.append(write_feature_map(folder / f"{key}.npz", feat))
    return written


@torch.inference_mode()
def sample_feature_map(model: Pix2PixHDModel, dataset: LayoutDataset, index: int) -> tuple[str, np.ndarray]:
    """(key, [feat_num, H, W] map) of one sample: E's per-segment averages painted on its untransformed segments."""
    item = dataset[index]
    batch = {k: v[None] for k, v in item.items() if isinstance(v, torch.Tensor)}
    _, real = model.encode_input(batch)
    segments = model.segment_ids(batch)
    sums, counts = segment_sums(model.netE.net(real).float(), segments)
    present = torch.nonzero(counts[:MAX_SEGMENT_ID]).flatten()
    means = (sums[present] / counts[present].unsqueeze(1)).cpu().numpy()
    table = dict(zip(present.tolist(), means, strict=True))
    source = dataset.source_segments(index, by_instance=bool(model.opt.instance_feat))
    return item["key"], paint_features(source, table, model.opt.feat_num)
