"""synth.api: every input kind gives the same image, every output kind the same pixels, cluster choices change the
chosen instance, bad input is one line, and the docs/api.md example runs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synth.api import load_run
from synth.core.errors import DataError, OptionError
from synth.data.io import read_instance, read_label
from tests.conftest import tiny_flags

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def doc_example() -> str:
    """The one python code block of docs/api.md."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1
    return blocks[0]


def with_paths(code: str, run_name: str, checkpoints: Path, label_png: Path) -> str:
    """The example with its RUN_NAME / CHECKPOINTS / LABEL_PNG lines pointing at this test's files."""
    values = {"RUN_NAME": run_name, "CHECKPOINTS": str(checkpoints), "LABEL_PNG": str(label_png)}
    for key, value in values.items():
        code, count = re.subn(rf"^{key} = .*$", f"{key} = {value!r}", code, count=1, flags=re.M)
        assert count == 1, key
    return code


@pytest.fixture(scope="module")
def tiny_run(demo_root, tmp_path_factory):
    from synth.options import parse_train_options
    from synth.trainer import Trainer

    checkpoints = tmp_path_factory.mktemp("api")
    Trainer(parse_train_options(tiny_flags(demo_root, checkpoints) + ["--max_iters", "2"])).train()
    return checkpoints


@pytest.fixture
def paths(demo_root):
    return demo_root / "test_label" / "demo_00000.png", demo_root / "test_inst" / "demo_00000.png"


def test_every_input_kind_gives_the_same_image(tiny_run, paths):
    run = load_run("tiny", tiny_run)
    label_png, inst_png = paths
    label, inst = read_label(label_png), read_instance(inst_png)
    from_files = run.synthesize(label_png, inst_png)
    assert from_files.shape == (*label.shape, 3) and from_files.dtype == np.uint8
    assert np.array_equal(run.synthesize(str(label_png), str(inst_png)), from_files)
    assert np.array_equal(run.synthesize(label.astype(np.uint8), inst.astype(np.int32)), from_files)
    assert np.array_equal(run.synthesize(torch.from_numpy(label), torch.from_numpy(inst)[None]), from_files)
    pil_label = Image.fromarray(label.astype(np.uint8))
    pil_inst = Image.fromarray(inst.astype(np.int32), mode="I")
    assert np.array_equal(run.synthesize(pil_label, pil_inst), from_files)


def test_output_kinds_hold_the_same_pixels(tiny_run, paths):
    run = load_run("tiny", tiny_run)
    array = run.synthesize(*paths)
    pil = run.synthesize(*paths, output="pil")
    tensor = run.synthesize(*paths, output="tensor")
    assert pil.mode == "RGB" and np.array_equal(np.asarray(pil), array)
    assert tensor.shape == (3, *array.shape[:2]) and tensor.dtype == torch.float32
    assert -1 <= float(tensor.min()) and float(tensor.max()) <= 1
    assert np.array_equal(((tensor.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy(), array)
    assert run.label_nc == 5 and run.needs_instance and run.size_multiple == 4


@pytest.mark.parametrize(
    "case, message",
    [
        ("big_id", "label: label id 7 >= label_nc 5"),
        ("sizes", "instance: size 32x28 differs from the label's 32x32"),
        ("stride", "label: size 30x30 is not a multiple of 4, which this run's generator needs"),
        ("no_inst", "tiny: this run was trained with instance maps; pass instance="),
        ("float", "label: holds float64 values; a map of integer ids is expected"),
        ("rgb", "label: PIL image has mode RGB; a single-channel map of ids is expected"),
        ("clusters", "tiny: cluster choices need a feature run (--instance_feat/--label_feat)"),
        ("output", "output must be 'numpy', 'pil' or 'tensor', not 'png'"),
    ],
)
def test_bad_input_is_one_line(tiny_run, paths, case, message):
    run = load_run("tiny", tiny_run)
    label, inst = read_label(paths[0]), read_instance(paths[1])
    calls = {
        "big_id": lambda: run.synthesize(np.where(label == 0, 7, label), inst),
        "sizes": lambda: run.synthesize(label, inst[:28]),
        "stride": lambda: run.synthesize(label[:30, :30], inst[:30, :30]),
        "no_inst": lambda: run.synthesize(label),
        "float": lambda: run.synthesize(label.astype(float), inst),
        "rgb": lambda: run.synthesize(Image.new("RGB", (32, 32)), inst),
        "clusters": lambda: run.synthesize(label, inst, clusters={1: 0}),
        "output": lambda: run.synthesize(label, inst, output="png"),
    }
    with pytest.raises((DataError, OptionError)) as err:
        calls[case]()
    assert str(err.value) == message


def test_a_missing_label_file_names_it(tiny_run, tmp_path):
    run = load_run("tiny", tiny_run)
    with pytest.raises(DataError, match=r"missing\.png: file not found$"):
        run.synthesize(tmp_path / "missing.png", tmp_path / "missing.png")


def test_the_docs_example_runs(tiny_run, paths, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(with_paths(doc_example(), "tiny", tiny_run, paths[0]), str(DOC), "exec"), {})
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "synthesized.png")), load_run("tiny", tiny_run).synthesize(*paths)
    )


@pytest.fixture(scope="module")
def feature_run(demo_root, tmp_path_factory):
    """A tiny --instance_feat run and its clusters (3 per class)."""
    from synth.commands.encode_features import main as encode_features_main
    from synth.options import parse_train_options
    from synth.trainer import Trainer

    checkpoints = tmp_path_factory.mktemp("api_feat")
    flags = tiny_flags(demo_root, checkpoints) + [
        "--instance_feat",
        "--nef",
        "4",
        "--n_downsample_E",
        "2",
        "--max_iters",
        "2",
    ]
    Trainer(parse_train_options(flags)).train()
    common = ["--name", "tiny", "--checkpoints_dir", str(checkpoints), "--device", "cpu", "--no_progress"]
    assert encode_features_main(common + ["--n_clusters", "3"]) == 0
    return load_run("tiny", checkpoints)


def pick_instance(run, label, inst) -> tuple[int, int, int]:
    """(instance id, its class, another cluster index) of an instance whose class has 2+ clusters."""
    from synth.features import segment_classes

    table = run.feature_table(label, inst, {}, {}, seed=0)
    for segment, label_id in segment_classes(label, inst).items():
        centres = run.clusters.centers.get(label_id, ())
        for index, centre in enumerate(centres):
            if segment in table and not np.allclose(centre, table[segment]):
                return segment, label_id, index
    pytest.skip("no instance whose class has two distinct clusters")


@pytest.mark.slow
def test_a_cluster_choice_changes_that_instance(feature_run, paths):
    label, inst = read_label(paths[0]), read_instance(paths[1])
    segment, label_id, index = pick_instance(feature_run, label, inst)
    base = feature_run.feature_table(label, inst, {}, {}, seed=0)
    chosen = feature_run.feature_table(label, inst, {segment: index}, {}, seed=0)
    assert np.allclose(chosen[segment], feature_run.clusters.centers[label_id][index])
    assert all(np.array_equal(chosen[s], base[s]) for s in base if s != segment)  # the others are not redrawn
    before = feature_run.synthesize(label, inst).astype(int)
    after = feature_run.synthesize(label, inst, clusters={segment: index}).astype(int)
    change = np.abs(after - before).sum(2)
    mask = inst == segment
    assert change[mask].mean() > 0 and change[mask].mean() > change[~mask].mean()
    same_seed = feature_run.synthesize(label, inst, seed=0)
    assert np.array_equal(same_seed, before.astype(np.uint8))


@pytest.mark.slow
def test_class_choices_and_bad_cluster_choices(feature_run, paths):
    label, inst = read_label(paths[0]), read_instance(paths[1])
    segment, label_id, index = pick_instance(feature_run, label, inst)
    table = feature_run.feature_table(label, inst, {}, {label_id: index}, seed=0)
    assert np.allclose(table[segment], feature_run.clusters.centers[label_id][index])
    count = feature_run.clusters.cluster_count(label_id)
    with pytest.raises(
        OptionError,
        match=rf"^instance {segment}: cluster 99 does not exist; class {label_id} "
        rf"has {count} clusters$",
    ):
        feature_run.synthesize(label, inst, clusters={segment: 99})
    with pytest.raises(OptionError, match=r"^clusters: instance 123456 is not in the map"):
        feature_run.synthesize(label, inst, clusters={123456: 0})
    with pytest.raises(OptionError, match=r"^class_clusters: class 9 is out of range \(label_nc 5\)$"):
        feature_run.synthesize(label, inst, class_clusters={9: 0})
