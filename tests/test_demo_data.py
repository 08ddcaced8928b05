"""Tests of the procedural demo dataset (data/demo.py): layout, id consistency, determinism, factors, CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from synth.commands.demo_data import main
from synth.core.errors import DataError, OptionError
from synth.data.demo import (
    DEMO_CLASS_NAMES,
    DEMO_LABEL_NC,
    DemoConfig,
    generate_demo_dataset,
    instance_factors,
    load_demo_metadata,
    sample_hue,
    sample_stripe_freq,
    stripe_bottom_share,
)

SMALL = DemoConfig(width=64, height=64, n_train=6, n_test=2, seed=0)
KINDS = ("label", "inst", "img")


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small dataset shared by the read-only tests."""
    return generate_demo_dataset(tmp_path_factory.mktemp("demo") / "set", SMALL)


def _files(root: Path) -> list[Path]:
    """Every file under root, sorted, relative paths."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def _read(root: Path, split: str, kind: str, index: int) -> np.ndarray:
    """One PNG as stored (no conversion)."""
    return cv2.imread(str(root / f"{split}_{kind}" / f"demo_{index:05d}.png"), cv2.IMREAD_UNCHANGED)


def test_layout_and_counts(small_root: Path) -> None:
    for split, count in (("train", SMALL.n_train), ("test", SMALL.n_test)):
        for kind in KINDS:
            names = sorted(p.name for p in (small_root / f"{split}_{kind}").iterdir())
            assert names == [f"demo_{i:05d}.png" for i in range(count)]
    meta = load_demo_metadata(small_root)
    assert meta["label_nc"] == DEMO_LABEL_NC == 5
    assert meta["class_names"] == list(DEMO_CLASS_NAMES)
    assert set(meta["factors"]) >= {"hue", "stripe_freq"}
    assert meta["config"] == SMALL.to_json()
    assert len(meta["images"]) == SMALL.n_train + SMALL.n_test
    assert "train/demo_00000" in meta["images"] and "test/demo_00001" in meta["images"]


def test_maps_types_and_id_consistency(small_root: Path) -> None:
    meta = load_demo_metadata(small_root)
    for key, entry in meta["images"].items():
        split, name = key.split("/")
        index = int(name.split("_")[1])
        label, inst, img = (_read(small_root, split, kind, index) for kind in KINDS)
        assert label.dtype == np.uint8 and label.shape == (64, 64)
        assert inst.dtype == np.uint16 and inst.shape == (64, 64)
        assert img.dtype == np.uint8 and img.shape == (64, 64, 3)
        assert label.min() >= 0 and label.max() < DEMO_LABEL_NC
        inst = inst.astype(np.int64)
        expected_label = np.where(inst >= 1000, inst // 1000, inst)
        np.testing.assert_array_equal(expected_label, label)
        ids, counts = np.unique(inst, return_counts=True)
        recorded = {ins["id"]: ins for ins in entry["instances"]}
        assert set(recorded) == set(ids.tolist()), key
        for ident, count in zip(ids.tolist(), counts.tolist(), strict=True):
            ins = recorded[ident]
            assert ins["area"] == count
            assert ins["class"] == (ident // 1000 if ident >= 1000 else ident)
            yy, xx = np.nonzero(inst == ident)
            assert ins["bbox"] == [xx.min(), yy.min(), xx.max() + 1, yy.max() + 1]
            assert 0 <= ins["hue"] < 1
            if ins["class"] >= 2:
                assert SMALL.stripe_min <= ins["stripe_freq"] <= SMALL.stripe_max


def test_deterministic_and_seed_dependent(tmp_path: Path, small_root: Path) -> None:
    again = generate_demo_dataset(tmp_path / "again", SMALL)
    assert _files(again) == _files(small_root)
    for rel in _files(small_root):
        assert (again / rel).read_bytes() == (small_root / rel).read_bytes(), rel
    other = generate_demo_dataset(tmp_path / "other", dataclasses.replace(SMALL, seed=1))
    rel = Path("train_img/demo_00000.png")
    assert (other / rel).read_bytes() != (small_root / rel).read_bytes()


@pytest.mark.parametrize("tail", [1.0, 3.2, 7.4])
def test_stripe_tail_controls_bottom_share(tail: float) -> None:
    config = DemoConfig(stripe_min=1.0, stripe_max=6.0, stripe_tail=tail)
    freq = sample_stripe_freq(np.random.default_rng(123), 40_000, config)
    assert freq.min() >= 1.0 and freq.max() <= 6.0
    share = np.mean(freq < 1.0 + 0.3 * 5.0)
    assert share == pytest.approx(stripe_bottom_share(tail), abs=0.015)
    assert stripe_bottom_share(tail) == pytest.approx(0.3 ** (1 / tail))


def test_hue_sampler_centres_and_spread() -> None:
    config = DemoConfig(hue_spread=0.2)
    classes = np.repeat(np.array([2, 3, 4]), 2000)
    hue = sample_hue(np.random.default_rng(5), classes, config)
    assert hue.min() >= 0 and hue.max() < 1
    for cls, centre in zip((2, 3, 4), config.hue_centres, strict=True):
        offset = (hue[classes == cls] - centre + 0.5) % 1.0 - 0.5
        assert np.abs(offset).max() <= 0.1 + 1e-4


def _circular_mean_hue(hue_cv: np.ndarray) -> float:
    """Mean of OpenCV uint8 hues (0..179) on the circle, as a fraction of a turn."""
    angle = hue_cv.astype(np.float64) / 180.0 * 2 * np.pi
    return float(np.angle(np.mean(np.exp(1j * angle))) / (2 * np.pi) % 1.0)


def test_pixel_hue_follows_recorded_hue(tmp_path: Path) -> None:
    config = DemoConfig(width=64, height=64, n_train=12, n_test=0, hue_spread=1.0)
    root = generate_demo_dataset(tmp_path / "hue", config)
    errors, hues = [], []
    for row in instance_factors(root, "train"):
        if row["area"] < 40:
            continue
        index = int(row["image"].split("_")[1])
        inst, img = _read(root, "train", "inst", index), _read(root, "train", "img", index)
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        pixel_hue = _circular_mean_hue(hsv[..., 0][inst == row["id"]])
        errors.append(abs((pixel_hue - row["hue"] + 0.5) % 1.0 - 0.5))
        hues.append(row["hue"])
    assert len(errors) >= 15
    assert max(errors) < 0.01
    assert np.ptp(hues) > 0.5  # uniform hue spread actually spans the wheel


def test_instance_factors_flat_list(small_root: Path) -> None:
    rows = instance_factors(small_root, "test")
    assert rows and all(r["image"].startswith("test/") and r["class"] in (2, 3, 4) for r in rows)
    with_stuff = instance_factors(small_root, "test", things_only=False)
    assert len(with_stuff) > len(rows) and {r["class"] for r in with_stuff} - {2, 3, 4} <= {0, 1}
    with pytest.raises(DataError):
        instance_factors(small_root, "val")


def test_rerun_is_noop_and_other_config_refused(tmp_path: Path) -> None:
    root = generate_demo_dataset(tmp_path / "set", SMALL)
    before = {rel: (root / rel).stat().st_mtime_ns for rel in _files(root)}
    generate_demo_dataset(root, SMALL)
    assert {rel: (root / rel).stat().st_mtime_ns for rel in _files(root)} == before
    bigger = DemoConfig(width=64, height=64, n_train=7, n_test=2)
    with pytest.raises(DataError, match="n_train"):
        generate_demo_dataset(root, bigger)
    generate_demo_dataset(root, bigger, overwrite=True)
    assert load_demo_metadata(root)["config"]["n_train"] == 7
    assert len(list((root / "train_img").iterdir())) == 7


def test_interrupted_run_is_detected_and_foreign_folder_refused(tmp_path: Path) -> None:
    root = generate_demo_dataset(tmp_path / "set", SMALL)
    (root / "metadata.json").unlink()  # as if the run died before writing metadata
    with pytest.raises(DataError):
        load_demo_metadata(root)
    generate_demo_dataset(root, SMALL)
    assert load_demo_metadata(root)["config"] == SMALL.to_json()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        generate_demo_dataset(foreign, SMALL)


def test_invalid_config_rejected(tmp_path: Path) -> None:
    with pytest.raises(OptionError):
        generate_demo_dataset(tmp_path / "bad", DemoConfig(width=60))
    with pytest.raises(OptionError):
        generate_demo_dataset(tmp_path / "bad", DemoConfig(stripe_min=5.0, stripe_max=2.0))


def test_cli_writes_and_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["--out", str(out), "--n_train", "3", "--n_test", "1", "--size", "48", "32", "--seed", "4"]
    assert main(argv + ["--stripe_tail", "2"]) == 0
    assert "3 train" in capsys.readouterr().out
    assert cv2.imread(str(out / "train_img" / "demo_00002.png")).shape == (32, 48, 3)
    assert len(json.loads((out / "metadata.json").read_text())["images"]) == 4
    assert main(argv + ["--stripe_tail", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert main(argv + ["--stripe_tail", "3", "--overwrite"]) == 0
    assert main(["--out", str(tmp_path / "x"), "--size", "50", "64"]) == 2
