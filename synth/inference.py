"""Batch inference: load a generator from a checkpoint (architecture from the checkpoint), synthesize a split or a
folder of label maps, write PNGs and ``results/NAME/PHASE_EPOCH/index.html``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

import synth.models  # noqa: F401  (registers networks and models)
from synth.assembly import build_model
from synth.checkpoint import checkpoint_path, load_checkpoint, load_net_state, merge_architecture
from synth.core.errors import CheckpointError, OptionError
from synth.data import create_dataset
from synth.features import (
    FeatureClusters,
    check_cluster_choices,
    cluster_feature_batch,
    default_cluster_path,
    parse_pairs,
)
from synth.logger import visuals_of
from synth.models.base_model import LayoutModel
from synth.models.pix2pixhd_model import generator_size_multiple
from synth.runtime import autocast, cast_for_inference, prepare_networks
from synth.visualize import save_png, write_html_page

#: Data flags that default to the training run's values at test time unless typed on the command line.
DATA_KEYS_FROM_TRAINING = ("dataroot", "dataset_mode", "resize_or_crop", "loadSize", "fineSize")


def load_generator(opt: argparse.Namespace) -> LayoutModel:
    """The model of ``checkpoints/NAME/<which_epoch>.pt`` in eval mode on ``opt.device``; updates ``opt``."""
    path = checkpoint_path(opt)
    state = load_checkpoint(path)
    saved = state["options"]
    merge_architecture(opt, saved, path)
    for key in DATA_KEYS_FROM_TRAINING:
        if key not in opt.explicit and key in saved:
            setattr(opt, key, saved[key])
    model = build_model(opt, for_training=False)
    for name, net in model.networks().items():
        if name not in state["nets"]:
            raise CheckpointError(f"{path}: has no network {name}")
        load_net_state(net, state["nets"][name], name, path)
    model = model.to(torch.device(opt.device)).eval()
    prepare_networks(model, opt)
    return model


def run_inference(opt: argparse.Namespace) -> Path:
    """Synthesize up to ``--how_many`` inputs; returns the results page."""
    model = load_generator(opt)
    cast_for_inference(model, opt)
    opt.size_multiple = generator_size_multiple(opt)
    dataset = create_dataset(opt)
    features = feature_source(model, opt, dataset.has_images)
    synthesize = onnx_synthesizer(opt.onnx, model) if getattr(opt, "onnx", None) else partial(synthesize_visuals, model)
    loader = DataLoader(dataset, batch_size=opt.batchSize, shuffle=False, num_workers=opt.nThreads)
    out_dir = Path(opt.results_dir) / opt.name / f"{opt.phase}_{opt.which_epoch}"
    rows = []
    total = min(len(dataset), opt.how_many) if opt.how_many > 0 else len(dataset)
    with tqdm(total=total, desc="synthesizing", unit="img", disable=opt.no_progress) as bar:
        with torch.inference_mode(), autocast(opt):
            for batch in loader:
                semantics, real = model.encode_input(batch)
                fake, extra = synthesize(model.generator_input(semantics, features(batch, real)))
                for i, key in enumerate(batch["key"]):
                    if len(rows) >= total:
                        break
                    visuals = visuals_of(batch, fake, i, opt.label_nc, extra)
                    rows.append(_write_sample(out_dir, key, visuals, getattr(opt, "aspect_ratio", 1.0)))
                    bar.update(1)
                if len(rows) >= total:
                    break
    title = f"Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {opt.which_epoch}"
    return write_html_page(out_dir / "index.html", title, rows, width=getattr(opt, "display_winsize", 256))


def onnx_synthesizer(path: str, model: LayoutModel) -> Callable[[torch.Tensor], tuple[torch.Tensor, dict]]:
    """``--onnx``: the generator run by onnxruntime from an exported file (synth-export-onnx or
    ``test.py --export_onnx``) instead of torch; the checkpoint still gives the input encoding."""
    if getattr(model, "inference_visuals", None) is not None:
        raise OptionError(f"--onnx {path}: --model {model.opt.model} makes more than the image; run it in torch")
    if not Path(path).is_file():
        raise OptionError(f"--onnx {path}: no such file (write one with --export_onnx {path})")
    try:
        import onnxruntime
    except ImportError:
        raise OptionError("--onnx needs onnxruntime: pip install onnxruntime") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def synthesize(generator_input: torch.Tensor) -> tuple[torch.Tensor, dict]:
        out = session.run(None, {name: generator_input.float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(generator_input.device), {}

    return synthesize


def synthesize_visuals(
    model: LayoutModel, generator_input: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The synthesized image, plus the extra images of a model with ``inference_visuals`` (ECGAN's edge map...)."""
    extra_visuals = getattr(model, "inference_visuals", None)
    if extra_visuals is None:
        return model(generator_input), {}
    extra = dict(extra_visuals(generator_input))
    return extra.pop("synthesized_image"), extra


FeatureSource = Callable[[dict, torch.Tensor | None], torch.Tensor | None]


def feature_source(model: LayoutModel, opt: argparse.Namespace, has_images: bool) -> FeatureSource:
    """Where instance features come from at test time: none, the encoder on the real image
    (--use_encoded_image), or the per-class clusters (random with --seed, or --cluster_choice CLASS:INDEX)."""
    if not getattr(model, "use_features", False):
        return lambda batch, real: None
    if opt.use_encoded_image:
        if not model.has_encoder:
            raise OptionError(
                f"{opt.name}: was trained with --load_features and has no encoder; drop --use_encoded_image to "
                "sample the clusters (synth-encode-features makes them from the precomputed maps)"
            )
        if not has_images:
            raise OptionError(f"{opt.dataroot}: --use_encoded_image needs real images for phase '{opt.phase}'")
        return lambda batch, real: model.encode_features(real, model.segment_ids(batch))
    cluster_path = opt.cluster_path or default_cluster_path(opt)
    clusters = FeatureClusters.load(cluster_path)
    clusters.check_fits(cluster_path, opt.feat_num, opt.label_nc)
    choices = parse_pairs(opt.cluster_choice, "--cluster_choice")
    check_cluster_choices(choices, clusters, opt.label_nc)
    rng = np.random.default_rng(opt.seed)

    def sample(batch: dict, real: torch.Tensor | None) -> torch.Tensor:
        segments = batch["inst"] if opt.instance_feat else batch["label"]
        maps = cluster_feature_batch(batch["label"], segments, clusters, choices, rng)
        return maps.to(next(model.parameters()).device)

    return sample


def with_aspect_ratio(array: np.ndarray, ratio: float, nearest: bool = False) -> np.ndarray:
    """``--aspect_ratio`` (the pix2pixHD / CycleGAN test flag): a saved HxW picture stretched to width/height
    ``ratio`` times its own, widening when ratio > 1 and heightening when < 1; label colours stay exact."""
    if ratio == 1.0:
        return array
    import cv2

    h, w = array.shape[:2]
    size = (round(w * ratio), h) if ratio > 1 else (w, round(h / ratio))
    return cv2.resize(array, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_CUBIC)


def _write_sample(
    out_dir: Path, key: str, visuals: dict, aspect_ratio: float = 1.0
) -> tuple[str, list[tuple[str, str]]]:
    images = []
    for kind, array in visuals.items():
        name = f"{key}_{kind}.png"
        save_png(out_dir / "images" / name, with_aspect_ratio(array, aspect_ratio, nearest=kind == "input_label"))
        images.append((kind, f"images/{name}"))
    return key, images
