"""synth-eval end to end on a tiny fake results folder: a tiny TorchScript segmenter, random-weight Inception
features (``--fid_weights random``, tests only), Cityscapes label ids, the table, JSON and CSV, merging runs, and
one-line errors for missing weights."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from synth.commands.evaluate import main as eval_main
from synth.metrics import evaluate as ev
from synth.metrics.segmentation import cityscapes_to_train_ids, cityscapes_train_id_to_label_id

KEYS = [f"aachen_{i:06d}_000019" for i in range(4)]
H, W = 16, 32  # generated size; the ground truth is twice as large


class _RedDecoder(nn.Module):
    """Reads the class from the red channel (class c painted as red = 10 c): a perfect segmenter for the fakes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = torch.round(x[:, 0] * 255.0 / 10.0).long().clamp(0, 18)
        return torch.nn.functional.one_hot(cls, 19).permute(0, 3, 1, 2).float()


def _fake_run(root: Path, noise: float = 0.0) -> tuple[Path, Path, Path]:
    """results/NAME/test_latest/images with synthesized + real images, and a Cityscapes gtFine/val tree."""
    rng = np.random.default_rng(0)
    results = root / "results" / "tiny" / "test_latest"
    (results / "images").mkdir(parents=True)
    to_label = cityscapes_train_id_to_label_id()
    for key in KEYS:
        train = np.kron(rng.integers(0, 19, (H // 4, W // 4)), np.ones((4, 4), dtype=np.int64)).astype(np.uint8)
        train[0, :5] = 255  # some void
        label_ids = np.where(train == 255, 0, to_label[train]).astype(np.uint8)
        big = np.kron(label_ids, np.ones((2, 2), dtype=np.uint8))
        city = root / "cityscapes" / "gtFine" / "val" / "aachen"
        city.mkdir(parents=True, exist_ok=True)
        Image.fromarray(big).save(city / f"{key}_gtFine_labelIds.png")
        # what the pipeline will compare against: labels -> trainIds -> nearest resize
        seen = np.asarray(Image.fromarray(cityscapes_to_train_ids(big)).resize((W, H), Image.NEAREST))
        red = np.where(seen == 255, 0, seen).astype(np.float64) * 10
        flip = rng.random((H, W)) < noise
        red = np.where(flip, 10 * rng.integers(0, 19, (H, W)), red)
        rgb = np.stack([red, rng.integers(0, 256, (H, W)), rng.integers(0, 256, (H, W))], -1).astype(np.uint8)
        Image.fromarray(rgb).save(results / "images" / f"{key}_synthesized_image.png")
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
            results / "images" / f"{key}_real_image.png")
    seg = root / "seg.pt"
    torch.jit.script(_RedDecoder()).save(str(seg))
    return results, root / "cityscapes", seg


def _flags(results: Path, dataroot: Path, seg: Path) -> list[str]:
    return ["--results_dir", str(results), "--dataset", "cityscapes", "--dataroot", str(dataroot),
            "--seg_model", "torchscript", "--seg_weights", str(seg), "--fid_weights", "random", "--fid_dims", "64",
            "--kid_subsets", "3", "--batch_size", "3", "--device", "cpu", "--no_progress"]


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    return _fake_run(tmp_path_factory.mktemp("evalrun"))


def test_perfect_segmenter_scores_one_and_outputs_are_written(fake_run, capsys):
    results, dataroot, seg = fake_run
    assert eval_main(_flags(results, dataroot, seg) + ["--real_dir", str(results / "images"), "--method", "ours"]) == 0
    out = capsys.readouterr().out
    assert "| method" in out and "mIoU ↑" in out and "Acc ↑" in out and "FID ↓" in out
    assert "| ours" in out and "100.0" in out
    data = json.loads((results / "eval.json").read_text())
    run = data["runs"][0]
    assert run["mIoU"] == 1.0 and run["Acc"] == 1.0 and run["Acc_void_included"] < 1.0
    assert run["num_images"] == 4 and (run["height"], run["width"]) == (H, W)
    assert run["per_class_iou"]["road"] in (1.0, None)
    assert np.isfinite(run["FID"]) and run["KID"] is not None and run["fid_dims"] == 64
    csv_lines = (results / "eval.csv").read_text().splitlines()
    assert csv_lines[0].startswith("method,dataset,num_images") and csv_lines[1].startswith("ours,cityscapes,4")


def test_fid_of_the_synthesized_set_against_itself_is_zero(fake_run, tmp_path):
    results, dataroot, seg = fake_run
    images = ev.find_synthesized(results)
    files = [images[k] for k in sorted(images)]
    out = ev.compute_fid(files, real_files=files, fid_weights="random", dims=64, kid_subsets=2, progress=False,
                         save_real_stats=tmp_path / "real.npz")
    assert abs(out["FID"]) < 1e-6
    other = ev.compute_fid(files, real_stats=tmp_path / "real.npz", fid_weights="random", dims=64, kid=False,
                           progress=False)
    assert other["FID"] == pytest.approx(out["FID"], abs=1e-6) and other["fid_real_count"] == 4
    real = ev.find_real_in_results(results)
    different = ev.compute_fid(files, real_files=real, fid_weights="random", dims=64, kid=False, progress=False)
    assert different["FID"] > 100 * max(abs(out["FID"]), 1e-8)


def test_noisy_predictions_score_below_one_and_runs_merge(tmp_path, capsys):
    results, dataroot, seg = _fake_run(tmp_path, noise=0.3)
    out_a = tmp_path / "a.json"
    assert eval_main(_flags(results, dataroot, seg) + ["--no_fid", "--out", str(out_a), "--method", "A"]) == 0
    run = json.loads(out_a.read_text())["runs"][0]
    assert 0 < run["mIoU"] < 1 and 0 < run["Acc"] < 1 and run["FID"] is None
    out_b = tmp_path / "b.json"
    flags_b = ["--no_seg", "--no_kid", "--out", str(out_b), "--method", "B"]
    assert eval_main(_flags(results, dataroot, seg) + flags_b) == 0
    capsys.readouterr()
    assert eval_main(["--runs", str(out_a), str(out_b), "--out", str(tmp_path / "table.json")]) == 0
    table = capsys.readouterr().out
    assert "| A " in table and "| B " in table
    assert len((tmp_path / "table.csv").read_text().splitlines()) == 3


def test_missing_weights_and_bad_flags_are_one_line_errors(fake_run, tmp_path, monkeypatch, capsys):
    results, dataroot, seg = fake_run
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    flags = _flags(results, dataroot, seg)
    i = flags.index("--fid_weights")
    fid_missing = flags[:i] + flags[i + 2:]  # no --fid_weights: the hub cache is looked in
    assert eval_main(fid_missing + ["--no_seg", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pt_inception-2015-12-05-6726825d.pth" in err
    assert str(tmp_path / "hub" / "checkpoints") in err
    drn = ["--results_dir", str(results), "--dataset", "cityscapes", "--dataroot", str(dataroot), "--no_fid",
           "--no_progress", "--device", "cpu", "--out", str(tmp_path / "y.json")]
    assert eval_main(drn) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "drn-d-105_ms_cityscapes.pth" in err
    assert eval_main(["--results_dir", str(tmp_path / "none"), "--dataset", "cityscapes"]) == 2
    assert "results folder not found" in capsys.readouterr().err
    assert eval_main(["--results_dir", str(results), "--dataset", "cityscapes", "--no_fid"]) == 2
    assert "--dataroot or --label_dir" in capsys.readouterr().err
    assert eval_main(["--results_dir", str(results), "--name", "x"]) == 2  # synth-test flags need --synthesize


def test_synthesize_runs_inference_on_the_whole_split_first(fake_run, monkeypatch):
    import argparse

    import synth.inference
    import synth.options

    results, dataroot, seg = fake_run
    seen = {}

    def fake_parse(argv):
        seen["argv"] = argv
        return argparse.Namespace(dataset_mode="cityscapes", dataroot=str(dataroot), phase="val")

    monkeypatch.setattr(synth.options, "parse_test_options", fake_parse)
    monkeypatch.setattr(synth.inference, "run_inference", lambda opt: results / "index.html")
    args = ev.build_parser().parse_args(["--synthesize"])
    ev._synthesize(args, ["--name", "tiny"])
    assert seen["argv"] == ["--name", "tiny", "--how_many", "0"]
    assert args.results_dir == str(results) and args.dataset == "cityscapes" and args.dataroot == str(dataroot)
