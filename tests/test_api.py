"""The Python API (synth.api): loading a run, inputs in every accepted form, cluster choices, photo styles, the
command line's one-line errors, and the runnable example of docs/api.md."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synth.api import Synthesizer
from synth.core.errors import DataError, OptionError
from synth.data.io import encode_instance_png, encode_label_png, read_instance, read_label

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth(feature_run) -> Synthesizer:
    return Synthesizer.load(feature_run["name"], checkpoints_dir=feature_run["checkpoints"], device="cpu")


@pytest.fixture(scope="module")
def maps(feature_run) -> tuple[Path, Path]:
    root = feature_run["dataroot"]
    return root / "test_label" / "demo_00000.png", root / "test_inst" / "demo_00000.png"


def test_every_input_form_gives_the_same_image(synth, maps):
    label_path, inst_path = maps
    label, inst = read_label(label_path), read_instance(inst_path)
    first = synth.synthesize(label_path, inst_path)
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    forms = [
        (str(label_path), str(inst_path)),
        (label, inst),
        (Image.open(label_path), Image.open(inst_path)),
        (torch.from_numpy(label)[None], torch.from_numpy(inst)),
        (open(label_path, "rb"), open(inst_path, "rb")),
    ]
    for label_in, inst_in in forms:
        np.testing.assert_array_equal(synth.synthesize(label_in, inst_in), first)
    pil = synth.synthesize(label, inst, as_pil=True)
    assert isinstance(pil, Image.Image) and pil.size == (64, 64)
    np.testing.assert_array_equal(np.asarray(pil), first)


def test_a_cluster_choice_changes_that_instance_and_nothing_else_much(synth, maps):
    layout = synth.layout(*maps)
    classes = synth.segment_classes(layout)
    objects = [s for s, c in classes.items() if synth.cluster_count(c) > 1]
    assert objects, "the tiny run should have clusters for the demo's objects"
    target = max(objects, key=lambda s: int((layout.inst == s).sum()))
    current = synth.cluster_choices(layout)[target]
    centers = synth.clusters.centers[classes[target]]
    other = int(np.argmax(np.abs(centers - centers[current]).sum(1)))
    before = synth.synthesize(layout).astype(float)
    after = synth.synthesize(layout, clusters={target: other}).astype(float)
    change = np.abs(after - before).mean(2)
    mask = layout.inst == target
    assert change[mask].mean() > 0
    # other instances keep their clusters: the default is drawn per instance id, not in sequence
    assert synth.cluster_choices(layout, {target: other}) == {**synth.cluster_choices(layout), target: other}


def test_styles_from_a_photo_and_variants(synth, maps, feature_run):
    layout = synth.layout(*maps)
    photo = feature_run["dataroot"] / "test_img" / "demo_00000.png"
    styles = synth.encode_styles(photo, layout)
    assert set(styles) == set(synth.segment_classes(layout)) and all(v.shape == (3,) for v in styles.values())
    from_photo = synth.synthesize(layout, photo=photo)
    np.testing.assert_array_equal(from_photo, synth.synthesize(layout, styles=styles))
    target = next(s for s, c in synth.segment_classes(layout).items() if synth.cluster_count(c) > 1)
    variants = synth.variants(layout, target, count=2)
    assert [k for k, _ in variants] == [0, 1]
    np.testing.assert_array_equal(variants[1][1], synth.synthesize(layout, clusters={target: 1}))


def test_bad_layouts_give_the_command_lines_one_line_errors(synth, maps, tmp_path):
    label, inst = read_label(maps[0]), read_instance(maps[1])
    with pytest.raises(
        DataError, match=r"^label\.png: label id 7 found but --label_nc is 5 \(ids must be in \[0, 5\)\)"
    ):
        bad = label.copy()
        bad[0, 0] = 7
        synth.layout(bad, inst, name="label.png")
    with pytest.raises(DataError, match=r"size 32x64 differs from its label map"):
        synth.layout(label, inst[:, :32])
    with pytest.raises(DataError, match=r"size 62x64 is not divisible by 4, the generator's total stride"):
        synth.layout(label[:, :62], inst[:, :62])
    with pytest.raises(DataError, match=r"needs the instance map too"):
        synth.layout(label)
    with pytest.raises(DataError, match=r"rgb\.png: label map has 3 channels"):
        Image.new("RGB", (64, 64)).save(tmp_path / "rgb.png")
        synth.layout(open(tmp_path / "rgb.png", "rb"), inst, name="rgb.png")
    with pytest.raises(DataError, match=r"float64 values"):
        synth.layout(label.astype(float), inst)
    layout = synth.layout(label, inst)
    with pytest.raises(OptionError, match=r"instance 4242 is not in the map"):
        synth.synthesize(layout, clusters={4242: 0})
    target = next(s for s, c in synth.segment_classes(layout).items() if synth.cluster_count(c) > 0)
    with pytest.raises(OptionError, match=rf"instance {target}: cluster 99 does not exist"):
        synth.synthesize(layout, clusters={target: 99})


def test_label_and_instance_pngs_round_trip(maps):
    label, inst = read_label(maps[0]), read_instance(maps[1])
    for encode, read, ids in ((encode_label_png, read_label, label), (encode_instance_png, read_instance, inst)):
        np.testing.assert_array_equal(read(io.BytesIO(encode(ids))), ids)


def example_code() -> str:
    """The first python code block of docs/api.md."""
    text = (REPO / "docs" / "api.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def example_folder(feature_run, folder: Path) -> Path:
    """A folder laid out as the example expects: checkpoints/demo_features and datasets/demo."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "datasets").mkdir()
    os.symlink(feature_run["checkpoints"] / feature_run["name"], folder / "checkpoints" / "demo_features")
    os.symlink(feature_run["dataroot"], folder / "datasets" / "demo")
    (folder / "example.py").write_text(example_code())
    return folder


def test_the_docs_example_runs(feature_run, tmp_path):
    folder = example_folder(feature_run, tmp_path / "work")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "example.py"], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "restyled instance" in result.stdout and (folder / "restyled.png").is_file()
