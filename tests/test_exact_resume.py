"""Exact resume for every registered model: a run stopped mid-epoch or at an epoch end and continued with
--continue_train ends with the weights (and the saved extra state, e.g. ECGAN's memory bank) of a run never
stopped, to 1e-6. Each run: 6 images, batch 2 -> 3 iterations per epoch, 2 epochs."""

import pytest
import torch

from synth.checkpoint import load_checkpoint
from synth.models.registry import MODELS
from synth.options import parse_train_options
from synth.trainer import Trainer
from tests.conftest import tiny_flags

pytestmark = pytest.mark.slow

ECGAN = [
    "--model",
    "ecgan",
    "--ngf_label",
    "4",
    "--n_blocks_label",
    "1",
    "--contrast_dim",
    "8",
    "--contrast_anchors",
    "32",
    "--contrast_memory",
    "48",
    "--sim_pixels",
    "64",
]

#: model case -> extra flags ("{mod}" and "{labels}" are filled in from the pretrained fixture)
CASES = {
    "pix2pixHD": [],
    "pix2pixHD_image_pool": ["--pool_size", "3", "--use_dropout"],
    "pix2pixHD_features": ["--instance_feat", "--nef", "4", "--n_downsample_E", "2"],
    "local_enhancer": [
        "--netG",
        "local",
        "--n_local_enhancers",
        "1",
        "--n_blocks_local",
        "1",
        "--niter_fix_global",
        "1",
    ],
    "ecgan": ECGAN,
    "modulated": ["--model", "modulated", "--nef", "4"],
    "ghfeat": ["--model", "ghfeat", "--ghfeat_generator", "{mod}", "--ghfeat_width", "4"],
    "ghfeat_baseline": ["--model", "ghfeat_baseline", "--ghfeat_generator", "{mod}"],
    "selfcond": ["--model", "selfcond", "--sc_pretrained", "{mod}", "--sc_labels", "{labels}", "--sc_bins", "4"],
}


def test_every_registered_model_has_a_case():
    assert {flags[1] for flags in CASES.values() if flags[:1] == ["--model"]} | {"pix2pixHD"} == set(MODELS.names())


def _flags(root, checkpoints, case: str, pretrained: dict) -> list[str]:
    extra = [flag.format(**pretrained) for flag in CASES[case]]
    return tiny_flags(root, checkpoints, case) + ["--max_dataset_size", "6", "--print_freq", "2", *extra]


def _assert_same_state(a: dict, b: dict) -> None:
    for net in a["nets"]:
        for key, value in a["nets"][net].items():
            torch.testing.assert_close(b["nets"][net][key], value, rtol=0, atol=1e-6, msg=f"{net}.{key}")
    assert a["progress"] == b["progress"] and a["extra"].keys() == b["extra"].keys()
    for part in a["extra"]:
        for key, value in a["extra"][part].items():
            torch.testing.assert_close(b["extra"][part][key], value, rtol=0, atol=1e-6, msg=f"{part}.{key}")


@pytest.mark.parametrize("case", list(CASES))
def test_resume_mid_epoch_and_at_an_epoch_end_equals_a_straight_run(case, demo_root, tmp_path, pretrained):
    needs = pretrained if "{" in " ".join(CASES[case]) else {}
    straight = load_checkpoint(Trainer(parse_train_options(_flags(demo_root, tmp_path / "a", case, needs))).train())
    for stop_at in (2, 3):  # mid-epoch 1, end of epoch 1
        checkpoints = tmp_path / f"stop{stop_at}"
        flags = _flags(demo_root, checkpoints, case, needs)
        Trainer(parse_train_options(flags + ["--max_iters", str(stop_at)])).train()
        resumed = Trainer(parse_train_options(flags + ["--continue_train"]))
        assert resumed.total_iters == stop_at
        _assert_same_state(straight, load_checkpoint(resumed.train()))


@pytest.mark.parametrize("case", list(CASES))
def test_stepping_in_backward_trains_bit_for_bit_like_stepping_after_it(case, demo_root, tmp_path, pretrained):
    """--step_in_backward on (the default here) and off: the same weights and optimizer state, exactly, over three
    epochs (the third with a decayed learning rate, which the in-backward steps must pick up)."""
    needs = pretrained if "{" in " ".join(CASES[case]) else {}
    runs = {}
    for choice in ("on", "off"):
        flags = _flags(demo_root, tmp_path / choice, case, needs) + ["--niter_decay", "2", "--step_in_backward", choice]
        runs[choice] = load_checkpoint(Trainer(parse_train_options(flags)).train())
    on, off = runs["on"], runs["off"]
    for net, tensors in off["nets"].items():
        for key, value in tensors.items():
            assert torch.equal(on["nets"][net][key], value), f"{net}.{key}"
    for name, state in off["optimizers"].items():
        assert state["param_groups"] == on["optimizers"][name]["param_groups"], name
        assert state["state"].keys() == on["optimizers"][name]["state"].keys(), name
        for index, entries in state["state"].items():
            for key, value in entries.items():
                assert torch.equal(on["optimizers"][name]["state"][index][key], value), f"{name}.{index}.{key}"
