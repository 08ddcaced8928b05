"""Inference under --amp bf16 keeps bf16 weights (cast once at load, not by autocast on every call) and makes the
same pictures as autocast over fp32 weights, for every registered model."""

import numpy as np
import pytest
import torch
from PIL import Image

import synth.inference
from synth.api import Run
from synth.options import parse_test_options
from synth.trainer import Trainer
from tests.test_exact_resume import CASES, _flags

pytestmark = pytest.mark.slow


def _pictures(page) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p), np.int16) for p in sorted((page.parent / "images").glob("*.png"))}


#: GH-Feat's encoders make codes, not pictures (test.py refuses them); the image pool changes nothing at test time.
TEST_PY_CASES = [c for c in CASES if c not in ("pix2pixHD_image_pool", "ghfeat", "ghfeat_baseline")]


@pytest.mark.parametrize("case", TEST_PY_CASES)
def test_bf16_inference_keeps_bf16_weights_and_matches_autocast(case, demo_root, tmp_path, pretrained, monkeypatch):
    from synth.options import parse_train_options

    Trainer(parse_train_options(_flags(demo_root, tmp_path, case, pretrained) + ["--max_iters", "1"])).train()
    argv = ["--name", case, "--checkpoints_dir", str(tmp_path), "--dataroot", str(demo_root), "--device", "cpu",
            "--nThreads", "0", "--no_progress", "--how_many", "2", "--amp", "bf16", "--phase", "train"]
    argv += ["--use_encoded_image"] if case == "pix2pixHD_features" else []  # E runs in bf16 too
    seen = []
    load = synth.inference.load_generator
    monkeypatch.setattr(synth.inference, "load_generator", lambda opt: seen.append(load(opt)) or seen[-1])
    def pictures(results: str) -> dict[str, np.ndarray]:
        return _pictures(synth.inference.run_inference(parse_test_options([*argv, "--results_dir", results])))

    prepared = pictures(str(tmp_path / "a"))
    weights = {p.dtype for net in seen[0].networks().values() for p in net.parameters()}
    assert weights == {torch.bfloat16}

    monkeypatch.setattr(synth.inference, "cast_for_inference", lambda model, opt: None)
    autocast_only = pictures(str(tmp_path / "b"))
    assert prepared.keys() == autocast_only.keys() and any("synthesized_image" in k for k in prepared)
    for name, picture in prepared.items():
        # identical where this was written (AVX512-BF16); one grey level of slack for other CPUs' kernels
        assert np.abs(picture - autocast_only[name]).max() <= 1, name


def test_the_api_keeps_bf16_weights_and_renders(demo_root, tmp_path):
    from synth.options import parse_train_options

    Trainer(parse_train_options(_flags(demo_root, tmp_path, "pix2pixHD", {}) + ["--max_iters", "1"])).train()
    run = Run.load("pix2pixHD", tmp_path, device="cpu", amp="bf16")
    assert {p.dtype for p in run.model.parameters()} == {torch.bfloat16}
    label = np.zeros((32, 32), np.uint8)
    label[8:24, 8:24] = 3
    fake = run.generate(run.layout(label, label.astype(np.int32) * 1000))[0]
    assert fake.dtype == torch.float32 and fake.shape == (1, 3, 32, 32) and torch.isfinite(fake).all()


def test_reflection_pads_keep_bf16_under_autocast_with_the_same_values():
    from torch import nn

    from synth.models.networks.blocks import ReflectionPad2d, ResnetBlock

    x = torch.randn(1, 8, 6, 10).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, stock = ReflectionPad2d(2)(x), nn.ReflectionPad2d(2)(x)
        block = ResnetBlock(8)
        fast = block(x)
        block.body[0], block.body[4] = nn.ReflectionPad2d(1), nn.ReflectionPad2d(1)
        slow = block(x)
    assert ours.dtype == torch.bfloat16 and stock.dtype == torch.float32
    assert torch.equal(ours.float(), stock)
    assert torch.equal(fast.float(), slow.float())
    assert torch.equal(ReflectionPad2d(1)(x.float()), nn.ReflectionPad2d(1)(x.float()))  # no autocast: as torch's
