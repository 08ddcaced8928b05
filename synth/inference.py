"""Batch inference: load a generator from a checkpoint (architecture from the checkpoint), synthesize a split or a
folder of label maps, write PNGs and ``results/NAME/PHASE_EPOCH/index.html``."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

import models  # noqa: F401  (registers networks and models)
from data import create_dataset
from models.base_model import LayoutModel
from models.pix2pixhd_model import generator_size_multiple
from models.registry import MODELS
from synth.checkpoint import checkpoint_path, load_checkpoint, load_net_state, merge_architecture
from synth.logger import visuals_of
from synth.runtime import autocast, prepare_networks
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
    model = MODELS.get(opt.model)(opt, for_training=False)
    load_net_state(model.netG, state["nets"]["G"], "G", path)
    model = model.to(torch.device(opt.device)).eval()
    prepare_networks(model, opt)
    return model


def run_inference(opt: argparse.Namespace) -> Path:
    """Synthesize up to ``--how_many`` inputs; returns the results page."""
    model = load_generator(opt)
    opt.size_multiple = generator_size_multiple(opt)
    dataset = create_dataset(opt)
    loader = DataLoader(dataset, batch_size=opt.batchSize, shuffle=False, num_workers=opt.nThreads)
    out_dir = Path(opt.results_dir) / opt.name / f"{opt.phase}_{opt.which_epoch}"
    rows = []
    total = min(len(dataset), opt.how_many) if opt.how_many > 0 else len(dataset)
    with tqdm(total=total, desc="synthesizing", unit="img", disable=opt.no_progress) as bar:
        with torch.inference_mode(), autocast(opt):
            for batch in loader:
                fake = model(model.encode_input(batch)[0])
                for i, key in enumerate(batch["key"]):
                    if len(rows) >= total:
                        break
                    rows.append(_write_sample(out_dir, key, visuals_of(batch, fake, i, opt.label_nc)))
                    bar.update(1)
                if len(rows) >= total:
                    break
    title = f"Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {opt.which_epoch}"
    return write_html_page(out_dir / "index.html", title, rows)


def _write_sample(out_dir: Path, key: str, visuals: dict) -> tuple[str, list[tuple[str, str]]]:
    images = []
    for kind, array in visuals.items():
        name = f"{key}_{kind}.png"
        save_png(out_dir / "images" / name, array)
        images.append((kind, f"images/{name}"))
    return key, images
